"""Ship the result: the LoRA as a diffusers file, and optionally fused into a full Wan checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from world_r1.callbacks.ema import find_ema
from world_r1.policy.config import EXPERTS
from world_r1.policy.loading import load_wan_pipeline
from world_r1.policy.lora import weight_name

if TYPE_CHECKING:  # for the type hints only: the module imports nothing from callbacks
    from world_r1.module import WorldR1


def fuse_lora_into_pipeline(model: str | os.PathLike, lora_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Load the base Wan, fuse the LoRA into its weights with plain diffusers, and ``save_pretrained`` it.

    The result runs in any Wan pipeline at exactly the base model's inference cost (no adapter layers left).
    """
    pipe = load_wan_pipeline(model, torch.float32)
    fused = []
    for expert in EXPERTS:
        if (Path(lora_dir) / weight_name(expert)).is_file():
            into_second = {"load_into_transformer_2": True} if expert != "transformer" else {}
            pipe.load_lora_weights(str(lora_dir), weight_name=weight_name(expert), **into_second)
            fused.append(expert)
    if not fused:
        raise FileNotFoundError(f"No LoRA file in {lora_dir}: expected {weight_name('transformer')}.")
    pipe.fuse_lora(components=fused)
    pipe.unload_lora_weights()
    pipe.save_pretrained(out_dir)
    return Path(out_dir)


class LoRAExport(L.Callback):
    """At the end of ``fit`` (and every ``every_n_steps``), write ``<dirpath>/pytorch_lora_weights.safetensors``.

    With an :class:`~world_r1.callbacks.ema.LoRAEMA` callback in the trainer and ``weights="ema"``, the averaged
    weights are exported; otherwise the raw ones.
    """

    def __init__(self, dirpath: str | None = None, weights: str = "ema", every_n_steps: int = 0, fuse: bool = False):
        """
        Args:
            dirpath: output folder; default ``<log_dir>/lora``.
            weights: "ema" (the EMA weights when an EMA callback runs, else raw) or "raw".
            every_n_steps: also export during training every this many steps (0: only at the end).
            fuse: also write the base model with the LoRA fused in, as a diffusers directory ``<dirpath>/fused``.
        """
        if weights not in ("ema", "raw"):
            raise ValueError(f"LoRAExport.weights must be 'ema' or 'raw', got {weights!r}.")
        self.dirpath = dirpath
        self.weights = weights
        self.every_n_steps = every_n_steps
        self.fuse = fuse

    def _dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "lora")

    def _state_dict(self, trainer: L.Trainer, pl_module: WorldR1) -> dict[str, torch.Tensor] | None:
        ema = find_ema(trainer) if self.weights == "ema" else None
        return ema.averaged_lora_state_dict(pl_module) if ema is not None else None

    @rank_zero_only
    def export(self, trainer: L.Trainer, pl_module: WorldR1) -> Path:
        path = pl_module.policy.save_lora(self._dir(trainer), self._state_dict(trainer, pl_module))
        rank_zero_info(f"LoRA written to {path}")
        return path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: WorldR1, *args) -> None:
        if self.every_n_steps and pl_module.steps_done % self.every_n_steps == 0:
            self.export(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        self.export(trainer, pl_module)
        if self.fuse and trainer.is_global_zero:
            out = fuse_lora_into_pipeline(
                pl_module.policy_config.model, self._dir(trainer), self._dir(trainer) / "fused"
            )
            rank_zero_info(f"Wan with the LoRA fused in written to {out}")
