"""Every private API of a dependency that world-r1 relies on, in one place.

Each is wrapped here and pinned by a test in ``tests/test_compat.py``, so an upgrade that moves one fails there, by
name, instead of deep in a run; ``pyproject.toml`` caps the major versions they were checked against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import lightning as L
import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from diffusers.utils import logging as diffusers_logging
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.cli import LightningCLI
from tqdm import auto as tqdm_auto

__all__ = [
    "CheckpointAwareCLI",
    "DescribedRichProgressBar",
    "ResumableRichProgressBar",
    "collect_rng_states",
    "copy_tensors_",
    "decode_wan_unclamped",
    "delay_diffusers_progress_bars",
    "lerp_tensors_",
    "native_resolution_sift_pyramid",
    "prompt_clean",  # Wan's prompt cleaning (HTML entities, whitespace), a helper of diffusers' Wan pipeline module
    "set_rng_states",
    "uses_distributed_sampler",
]


def collect_rng_states() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA, where there is one) generator states: Lightning's own snapshot."""
    return _collect_rng_states(include_cuda=torch.cuda.is_available())


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`collect_rng_states` returned."""
    _set_rng_states(states)


def uses_distributed_sampler(trainer: L.Trainer) -> bool:
    """Whether the trainer will wrap dataloaders in a ``DistributedSampler`` (``Trainer(use_distributed_sampler=)``)."""
    return bool(trainer._accelerator_connector.use_distributed_sampler)


def copy_tensors_(targets: Sequence[torch.Tensor], sources: Sequence[torch.Tensor]) -> None:
    """``targets[i].copy_(sources[i])`` for all i, in one fused kernel where torch has it."""
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(list(targets), list(sources))
        return
    for target, source in zip(targets, sources, strict=True):
        target.copy_(source)


def lerp_tensors_(targets: Sequence[torch.Tensor], sources: Sequence[torch.Tensor], weight: float) -> None:
    """``targets[i].lerp_(sources[i], weight)`` for all i, in one fused kernel where torch has it (an EMA update)."""
    if hasattr(torch, "_foreach_lerp_"):
        torch._foreach_lerp_(list(targets), list(sources), weight)
        return
    for target, source in zip(targets, sources, strict=True):
        target.lerp_(source, weight)


def native_resolution_sift_pyramid() -> torch.nn.Module:
    """Kornia's SIFT pyramid without its first step, doubling the image (OpenCV's ``firstOctave=0``).

    The doubled first octave holds four times the pixels of the frame and so most of the pyramid's time. Kornia's
    detector still reads octave 0 as half-pixel spaced, so the keypoints it returns are at half the frame's
    coordinates (:class:`world_r1.geometry.matching.SIFTDetector` scales them back), and the frame's own blur is 0.5
    of its pixels, not the 1.0 of a doubled frame, so the first blur tops it up to SIFT's 1.6 from 0.5. It subclasses
    a private class of kornia 0.9's pyramid backend, which has no switch for this.
    """
    try:
        from kornia.feature.integrated import _SIFTScalePyramid
    except ImportError as error:  # a kornia without the 0.9 pyramid backend's internals
        raise ImportError(
            "geometry.upsample: false needs kornia 0.9's SIFT pyramid backend; install kornia==0.9.* or set "
            "geometry.upsample: true."
        ) from error

    class NativeResolutionPyramid(_SIFTScalePyramid):
        def __init__(self) -> None:
            super().__init__()
            self._sigmas[0] = math.sqrt(1.6**2 - 0.5**2)
            self._register_kernels(torch.device("cpu"))

        @staticmethod
        def _double(image: torch.Tensor) -> torch.Tensor:
            return image

    return NativeResolutionPyramid()


class _DelayedTqdm(tqdm_auto.tqdm):
    """tqdm's bar, shown only after :attr:`delay_s` seconds (tqdm's ``delay``) unless the caller sets its own."""

    delay_s = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"delay": self.delay_s} | kwargs)


def delay_diffusers_progress_bars(seconds: float) -> None:
    """diffusers' loading bars (``Loading pipeline components...``, ``Loading checkpoint shards``) appear only once
    loading has taken ``seconds``. diffusers has no hook for its bars: its factory ``diffusers.utils.logging.tqdm``
    builds them from the module it imported as ``tqdm_lib``, which this replaces."""
    _DelayedTqdm.delay_s = seconds
    diffusers_logging.tqdm_lib = SimpleNamespace(tqdm=_DelayedTqdm)


def decode_wan_unclamped(vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
    """``vae.decode(latents).sample`` without its final clamp to [-1, 1]: ``(B, 3, F, H, W)``.

    Mirrors diffusers' ``AutoencoderKLWan._decode`` (frame by frame through the causal feature cache) minus the clamp,
    which has zero gradient where a freshly initialised decoder's outputs lie, so VAE training can use it.
    """
    vae.clear_cache()
    x = vae.post_quant_conv(latents)
    frames = []
    for i in range(x.shape[2]):
        vae._conv_idx = [0]
        frames.append(
            vae.decoder(x[:, :, i : i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0)
        )
    vae.clear_cache()
    out = torch.cat(frames, dim=2)
    return unpatchify(out, patch_size=vae.config.patch_size) if vae.config.patch_size is not None else out


class ResumableRichProgressBar(RichProgressBar):
    """Lightning's rich progress bar, whose total stays right after a resume in the middle of an epoch."""

    _counted_epoch: int | None = None  # the epoch whose first batch set the total

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._counted_epoch = None  # a bar reused by a second fit counts its first epoch again

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._counted_epoch == trainer.current_epoch:
            return
        self._counted_epoch = trainer.current_epoch
        if batch_idx and self.progress is not None and self.train_progress_bar_id is not None:
            # Lightning bounds an epoch's total by the steps left (max_steps - global_step) but counts the bar from
            # the epoch's first batch, so a run resumed mid-epoch read "8/6" (a Flow-GRPO run is one endless epoch):
            # the batches that ran before the resume (the first index seen) count towards the total too
            task = self.progress.tasks[self.train_progress_bar_id]
            if task.total is not None:
                total = min(trainer.num_training_batches, task.total + batch_idx)
                self.progress.update(self.train_progress_bar_id, total=total)
                self.refresh()


class DescribedRichProgressBar(ResumableRichProgressBar):
    """The resumable rich progress bar whose training task is labelled by :meth:`train_description` (Lightning names
    the hook privately)."""

    def train_description(self) -> str:
        return "Training"

    def _get_train_description(self, current_epoch: int) -> str:
        return self.train_description()


class CheckpointAwareCLI(LightningCLI):
    """LightningCLI whose reading of ``--ckpt_path``'s hyper-parameters (a private step that runs before the Trainer
    exists) is the public :meth:`parse_ckpt_path`, and whose config sections are read by :meth:`config_section`."""

    def parse_ckpt_path(self) -> None:
        """Read ``--ckpt_path``'s hyper-parameters into ``self.config`` (Lightning's own reader by default)."""
        super()._parse_ckpt_path()

    def _parse_ckpt_path(self) -> None:
        self.parse_ckpt_path()

    def config_section(self, config: Any, key: str, default: Any = None) -> Any:
        """``config``'s section ``key`` of the running subcommand (``default`` when absent)."""
        return self._get(config, key, default=default)
