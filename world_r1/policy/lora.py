"""LoRA on the Wan transformer through diffusers' PEFT integration, and its export in diffusers' LoRA format."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import WanPipeline
from diffusers.models import WanTransformer3DModel
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import safe_open

from world_r1.policy.config import EXPERTS, LoRAConfig

ADAPTER = "default"
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
LORA_WEIGHT_NAME_2 = "pytorch_lora_weights_transformer_2.safetensors"  # the low-noise expert's (Wan 2.2 A14B)


def weight_name(expert: str) -> str:
    """The file name of ``expert``'s LoRA: diffusers' default for ``transformer``, :data:`LORA_WEIGHT_NAME_2` else."""
    return LORA_WEIGHT_NAME if expert == "transformer" else LORA_WEIGHT_NAME_2


def check_target_modules(transformer: torch.nn.Module, targets: list[str]) -> None:
    """Raise if a target suffix matches no ``nn.Linear`` of the transformer, listing the names that would work."""
    linear_names = [name for name, module in transformer.named_modules() if isinstance(module, torch.nn.Linear)]
    missing = [t for t in targets if not any(name == t or name.endswith("." + t) for name in linear_names)]
    if missing:
        block_names = sorted({name.split(".", 2)[2] for name in linear_names if name.startswith("blocks.0.")})
        raise ValueError(
            f"Unknown LoRA target module(s) {missing}: no linear layer of the transformer ends with them. "
            f"Valid suffixes inside a Wan block: {block_names}."
        )


def add_lora(transformer: WanTransformer3DModel, config: LoRAConfig) -> None:
    """Freeze the transformer and attach a trainable LoRA adapter named ``default``."""
    check_target_modules(transformer, config.target_modules)
    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
            init_lora_weights="gaussian" if config.init == "gaussian" else True,
        ),
        adapter_name=ADAPTER,
    )
    for name, param in transformer.named_parameters():
        param.requires_grad_("lora_" in name)


def lora_state_dict(transformer: WanTransformer3DModel) -> dict[str, torch.Tensor]:
    """The adapter's tensors with PEFT key names (``blocks.0.attn1.to_q.lora_A.weight``), detached on CPU."""
    state = get_peft_model_state_dict(transformer, adapter_name=ADAPTER)
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def save_lora(
    transformer: WanTransformer3DModel,
    directory: str | os.PathLike,
    state_dict: dict[str, torch.Tensor] | None = None,
    weight_name: str = LORA_WEIGHT_NAME,
) -> Path:
    """Write the adapter (or ``state_dict``) as a diffusers LoRA file that ``WanPipeline.load_lora_weights`` reads.

    The adapter's rank and alpha travel in the file's metadata, so plain diffusers scales it the same way.
    """
    state = state_dict if state_dict is not None else lora_state_dict(transformer)
    config = transformer.peft_config[ADAPTER]
    metadata = {"r": config.r, "lora_alpha": config.lora_alpha, "target_modules": sorted(config.target_modules)}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    WanPipeline.save_lora_weights(
        directory,
        transformer_lora_layers=state,
        weight_name=weight_name,
        transformer_lora_adapter_metadata=metadata,
    )
    return directory / weight_name


def _lora_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / LORA_WEIGHT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file {path} not found: pass the .safetensors written by `save_lora`.")
    return path


def lora_config_of_file(path: str | os.PathLike) -> LoRAConfig:
    """Rank, alpha and target modules of a LoRA file written by :func:`save_lora` (from its metadata); for a folder,
    the experts are those whose file it holds (Wan 2.2 A14B exports may hold one or both)."""
    path = Path(path)
    experts = [e for e in EXPERTS if (path / weight_name(e)).is_file()] if path.is_dir() else ["transformer"]
    path = path / weight_name(experts[0]) if path.is_dir() and experts else _lora_file(path)
    with safe_open(str(path), "pt") as handle:
        raw = (handle.metadata() or {}).get("lora_adapter_metadata")
    if raw is None:
        raise ValueError(f"{path} carries no LoRA metadata (rank/alpha): it was not written by world-r1's save_lora.")
    meta = json.loads(raw)
    return LoRAConfig(
        rank=int(meta["transformer.r"]),
        alpha=float(meta["transformer.lora_alpha"]),
        target_modules=list(meta["transformer.target_modules"]),
        experts=experts,
    )


def load_lora(transformer: WanTransformer3DModel, path: str | os.PathLike) -> None:
    """Load a diffusers-format LoRA file (or a directory holding one) into the existing ``default`` adapter."""
    path = _lora_file(path)
    state = WanPipeline.lora_state_dict(str(path))
    prefix = "transformer."
    peft_state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if not peft_state:
        raise ValueError(f"{path} holds no transformer LoRA weights (keys must start with {prefix!r}).")
    result = set_peft_model_state_dict(transformer, peft_state, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"{path} does not fit this adapter: unexpected keys such as {unexpected[:3]}.")


# ------------------------------------------------------------------------------------------------- the old adapter
OLD_ADAPTER = "old"  # a frozen, lagging copy of ``default``: DiffusionNFT's old policy, AWM's EMA policy


def _tuner_layers(transformer: torch.nn.Module) -> list[BaseTunerLayer]:
    return [module for module in transformer.modules() if isinstance(module, BaseTunerLayer)]


def add_old_adapter(transformer: WanTransformer3DModel) -> None:
    """Attach a frozen float32 adapter :data:`OLD_ADAPTER` equal to ``default``, and leave ``default`` active and
    trainable (diffusers' ``add_adapter`` activates the new adapter, so that is undone here). Its dropout is 0: the
    old policy is a fixed function, whose velocity must not change from one call to the next."""
    config = replace(transformer.peft_config[ADAPTER], lora_dropout=0.0)
    with warnings.catch_warnings():  # peft warns that a second adapter is being added: that is the point
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        transformer.add_adapter(config, adapter_name=OLD_ADAPTER)
    transformer.set_adapter(ADAPTER)
    for name, param in transformer.named_parameters():
        if f".{OLD_ADAPTER}." in name:
            param.requires_grad_(False)
            param.data = param.data.float()
    soft_update_old(transformer, 0.0)


def old_pairs(transformer: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(old, default)`` parameter pairs of every LoRA matrix; empty if there is no old adapter."""
    pairs = []
    for layer in _tuner_layers(transformer):
        for attr in ("lora_A", "lora_B"):
            matrices = getattr(layer, attr, {})
            if OLD_ADAPTER in matrices and ADAPTER in matrices:
                pairs.append((matrices[OLD_ADAPTER].weight, matrices[ADAPTER].weight))
    return pairs


@torch.no_grad()
def soft_update_old(transformer: torch.nn.Module, decay: float) -> None:
    """``old <- decay * old + (1 - decay) * default`` (decay 0: a copy)."""
    for old, new in old_pairs(transformer):
        old.mul_(decay).add_(new.detach().to(old.dtype), alpha=1.0 - decay)


def activate(transformer: torch.nn.Module, name: str) -> None:
    """Make adapter ``name`` the one the LoRA layers apply, without changing which parameters are trainable (peft's
    ``set_adapter`` would freeze ``default`` while ``old`` is active)."""
    flags = [(param, param.requires_grad) for param in transformer.parameters()]
    for layer in _tuner_layers(transformer):
        layer.set_adapter(name)
    for param, flag in flags:
        param.requires_grad_(flag)
