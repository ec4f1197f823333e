"""The rectified-flow noise schedule Wan samples with: sigma from 1 (noise) to 0 (data), shifted toward noise."""

from __future__ import annotations

import torch
from diffusers import UniPCMultistepScheduler


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Apply Wan's flow shift ``s * sigma / (1 + (s - 1) * sigma)``; keeps 0 and 1 fixed (3.0 at 480p, 5.0 at 720p)."""
    if shift <= 0:
        raise ValueError(f"flow shift must be > 0, got {shift}.")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(num_steps: int, shift: float = 3.0) -> torch.Tensor:
    """Sampling sigmas of shape ``(num_steps + 1,)`` from 1 down to 0 inclusive, float32.

    Step ``i`` moves from ``sigmas[i]`` to ``sigmas[i + 1]``; the transformer sees ``timestep = 1000 * sigma``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    return shift_sigmas(torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64), shift).float()


def wan_unipc_scheduler(flow_shift: float = 3.0) -> UniPCMultistepScheduler:
    """Wan's default sampler in diffusers: multistep UniPC on flow predictions over the shifted flow sigmas."""
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=flow_shift)
