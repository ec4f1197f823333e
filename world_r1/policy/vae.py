"""Encoding videos with Wan's VAE, the one way every part of world-r1 does it."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan

CPU_ENCODE_BATCH = 4  # clips per encoder call on CPU: 16 clips in one call took 1.4x as long as in fours


@torch.no_grad()
def encode_posterior_mean(vae: AutoencoderKLWan, pixels: torch.Tensor) -> torch.Tensor:
    """Posterior means ``(B, C, T, h, w)`` float32 (not normalised) of videos ``(B, 3, F, H, W)`` in [-1, 1], encoded
    in the VAE's own dtype (autocast off).

    On CPU the videos go channels-last, in batches of :data:`CPU_ENCODE_BATCH`: Wan's VAE RMS-normalises every
    activation over its channels, which on a channels-first tensor strides through memory and took half of the
    encoder's time. Measured on the mini Wan's VAE (16 clips of 9 x 128 x 128, 2 cores): 3.6 s -> 1.5 s, the same
    latents to 1e-6. Elsewhere the videos are encoded as given, in one call. Autocast is off so a ``bf16-mixed``
    trainer cannot lower an fp32 VAE (as :meth:`WanPolicy.decode` decodes).
    """
    dtype = next(vae.parameters()).dtype
    pixels = pixels.to(dtype)
    on_cpu = pixels.device.type == "cpu"
    if on_cpu:
        pixels = pixels.contiguous(memory_format=torch.channels_last_3d)
    parts = pixels.split(CPU_ENCODE_BATCH) if on_cpu else (pixels,)
    with torch.autocast(pixels.device.type, enabled=False):
        return torch.cat([vae.encode(part).latent_dist.mode().float() for part in parts])
