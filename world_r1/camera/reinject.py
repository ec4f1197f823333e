"""Step-wise re-injection of the warped noise during the first denoising steps, as the World-R1 release does.

Warping only the initial noise lets the denoiser drift away from the camera motion it carries as soon as the first
steps replace the noise with content. The release re-injects the warped noise during the first 8 steps, with a
low-pass filter (kernel 9) on the injected delta, so only the coarse layout of the noise (where things move) is
imposed and the model's own detail is kept. Its exact formula is not published with those numbers; the form here:

after step ``i < steps`` from ``x`` at ``sigma`` (velocity ``v``) to ``x_next`` at ``sigma_next``, the noise the state
carries is ``eps_hat = x + (1 - sigma) v`` (straight-line flow: the same for ``x_next``), and ::

    x_next <- x_next + sigma_next * strength * lowpass(eps_warped - eps_hat)

closing ``strength`` of the low-frequency gap between that noise and the warped noise, at the noise level of
``x_next``. At the first step (``sigma = 1``) ``eps_hat`` is the initial noise itself, so the delta is 0 (exactly, with
fp32 rollout storage) and the initial latent stays the exactly Gaussian warped noise; samples whose noise was not
warped (static cameras) are never touched. The re-injection is a deterministic function of the recorded states, so
a rollout's log-probabilities (each SDE step's Gaussian, from the state the policy saw) stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def low_pass(delta: torch.Tensor, kernel: int) -> torch.Tensor:
    """Box filter of width ``kernel`` over the two spatial axes of ``delta`` (B, C, T, h, w), per frame and channel;
    borders average over the pixels inside the frame."""
    if kernel == 1:
        return delta
    batch, channels, frames, height, width = delta.shape
    flat = delta.permute(0, 2, 1, 3, 4).reshape(batch * frames * channels, 1, height, width)
    smooth = F.avg_pool2d(flat, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return smooth.reshape(batch, frames, channels, height, width).permute(0, 2, 1, 3, 4)


@dataclass
class NoiseReinjection:
    """The warped noise of a batch and when and how strongly it is re-injected.

    noise: (B, C, T, h, w) each sample's warped initial noise. active: (B,) 1 for samples whose noise was warped.
    """

    noise: torch.Tensor
    active: torch.Tensor
    steps: int = 8
    strength: float = 0.35
    kernel: int = 9

    def __call__(
        self, step: int, x: torch.Tensor, velocity: torch.Tensor, sigma: float, x_next: torch.Tensor, sigma_next: float
    ) -> torch.Tensor:
        """``x_next`` after re-injection (unchanged from step ``steps`` on, and at the end of the schedule)."""
        if step >= self.steps or sigma_next <= 0 or self.strength == 0:
            return x_next
        predicted_noise = x.float() + (1.0 - sigma) * velocity.float()
        delta = low_pass(self.noise.to(x_next.device, torch.float32) - predicted_noise, self.kernel)
        weight = sigma_next * self.strength * self.active.to(x_next.device, torch.float32).view(-1, 1, 1, 1, 1)
        return (x_next.float() + weight * delta).to(x_next.dtype)
