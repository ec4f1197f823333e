"""The noise a batch of rollouts starts from, and the camera injection that follows it through the first steps.

One seed per sample makes everything: the plain Gaussian noise is drawn first (on CPU, so every device agrees), then
whatever the camera warp needs from the same generator. With ``camera.injection: stepwise`` (the release) the rollout
starts from the plain noise and the warped noise enters through :class:`~world_r1.camera.reinject.StepwiseDelta`;
with ``initial`` the warped noise is the starting noise (the transport's already blends in independent noise; Go-with-
the-Flow's is blended with the plain noise as the release's "blend" mode does), optionally re-injected
(:class:`~world_r1.camera.reinject.NoiseReinjection`). Training rollouts, evaluation and ``sample`` all call
:func:`starting_noise`, so a trained LoRA samples with the same conditioning it was trained with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from world_r1.camera.gwtf import blend
from world_r1.camera.reinject import NoiseReinjection, StepwiseDelta
from world_r1.camera.warp import CameraConfig, warped_noise, warps

#: what runs after step ``k``: ``(k, x, velocity, sigma, x_next, sigma_next) -> x_next``
Injection = Callable[[int, torch.Tensor, torch.Tensor, float, torch.Tensor, float], torch.Tensor]


@dataclass
class StartingNoise:
    """``noise`` (B, C, T, h, w): where the rollouts start; ``injection``: applied after each of the first steps, or
    None when no sample of the batch is injected."""

    noise: torch.Tensor
    injection: Injection | None = None


def starting_noise(
    seeds: Sequence[int],
    shape: tuple[int, int, int, int],
    prompts: Sequence[str] | None,
    config: CameraConfig,
    temporal_factor: int,
    cameras: Sequence[str | None] | None = None,
    device: torch.device | str = "cpu",
) -> StartingNoise:
    """The starting noise of one rollout per seed, latent ``shape`` (C, T, h, w) each, with the camera of each
    prompt (``cameras[i]``, an explicit camera description, overrides prompt ``i``'s; ``prompts`` None: no camera).
    ``temporal_factor`` is the VAE's (4 for Wan 2.1): the camera path is laid out at the video's frame rate."""
    cameras = list(cameras) if cameras is not None else [None] * len(seeds)
    plain, warped, active = [], [], []
    for i, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(shape, generator=generator)
        moving = prompts is not None and warps(prompts[i], cameras[i], config, shape[1])
        plain.append(noise)
        warped.append(
            warped_noise(noise, prompts[i], cameras[i], config, temporal_factor, generator) if moving else noise
        )
        active.append(float(moving))
    plain_batch, warped_batch = torch.stack(plain).to(device), torch.stack(warped).to(device)
    mask = torch.tensor(active)
    if config.injection == "stepwise":
        injection = None
        if any(active) and config.reinject_steps > 0 and config.strength > 0:
            injection = StepwiseDelta(
                plain_batch, warped_batch, mask, config.reinject_steps, config.strength, config.reinject_kernel
            )
        return StartingNoise(plain_batch, injection)
    if config.warp == "gwtf":  # the release's "blend" of the warped noise into plain noise, variance-preserving
        blended = blend(plain_batch, warped_batch, config.strength)
        warped_batch = torch.where(mask.to(device).bool().view(-1, 1, 1, 1, 1), blended, plain_batch)
    injection = None
    if any(active) and config.reinject_steps > 0 and config.reinject_strength > 0:
        injection = NoiseReinjection(
            warped_batch, mask, config.reinject_steps, config.reinject_strength, config.reinject_kernel
        )
    return StartingNoise(warped_batch, injection)
