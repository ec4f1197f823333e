"""The camera's warped noise injected during the first denoising steps: the release's step-wise delta, and the
project's re-injection.

Warping only the initial noise lets the denoiser drift away from the camera motion it carries as soon as the first
steps replace the noise with content. Both injections act after each of the first ``steps`` steps (8) through a
low-pass (a box of 9 latent pixels) on the injected delta, so only the coarse layout of the noise (where things move)
is imposed and the model's own detail is kept.

:class:`StepwiseDelta` is World-R1's released injection ("stepwise delta"): the rollout starts from plain Gaussian
noise ``x_T``, independent of the warped noise ``W``; ``delta = box9(W - x_T)`` per latent frame and channel (zero
padding counted, as ``avg_pool2d`` does by default), ``u = delta / (std(delta) + 1e-6)`` per sample, and after step
``k < steps``::

    x <- x + s * w_k * std(x) * u,   w = linspace(1, 0.1, steps) / sum

then ``x`` is rescaled to its own per-sample mean and std from before the injection (stds unbiased, +1e-6 in the
division, as the release). ``s`` is the wrap strength (0.35 for the 1.3B, 0.40 for the 14B).

:class:`NoiseReinjection` is the project's own, for a rollout that starts from the warped noise itself:

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


def low_pass(delta: torch.Tensor, kernel: int, count_padding: bool = False) -> torch.Tensor:
    """Box filter of width ``kernel`` over the two spatial axes of ``delta`` (B, C, T, h, w), per frame and channel;
    at the borders the box averages over the pixels inside the frame, or, with ``count_padding`` (the release's),
    over the whole box with zeros outside."""
    if kernel == 1:
        return delta
    batch, channels, frames, height, width = delta.shape
    flat = delta.permute(0, 2, 1, 3, 4).reshape(batch * frames * channels, 1, height, width)
    smooth = F.avg_pool2d(flat, kernel, stride=1, padding=kernel // 2, count_include_pad=count_padding)
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


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and (unbiased) std of ``x`` (B, ...), shaped to broadcast against it."""
    dims = tuple(range(1, x.ndim))
    return x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True)


@dataclass
class StepwiseDelta:
    """World-R1's released injection (module docstring) of the warped noise of a batch into its rollouts.

    start: (B, C, T, h, w) the plain starting noise ``x_T``; warped: the same shape, each sample's warped noise;
    active: (B,) 1 for samples whose prompt gives a camera (the others are never touched).
    """

    start: torch.Tensor
    warped: torch.Tensor
    active: torch.Tensor
    steps: int = 8
    strength: float = 0.35
    kernel: int = 9

    def __post_init__(self) -> None:
        delta = low_pass(self.warped.float() - self.start.float(), self.kernel, count_padding=True)
        self.unit = delta / (_mean_std(delta)[1] + 1e-6)
        self.weights = torch.linspace(1.0, 0.1, self.steps) / torch.linspace(1.0, 0.1, self.steps).sum()

    def __call__(
        self, step: int, x: torch.Tensor, velocity: torch.Tensor, sigma: float, x_next: torch.Tensor, sigma_next: float
    ) -> torch.Tensor:
        """``x_next`` after the injection of step ``step`` (unchanged from step ``steps`` on): the signature of every
        injection, of which this one reads the step and the state only."""
        if step >= self.steps or self.strength == 0:
            return x_next
        state = x_next.float()
        mean, std = _mean_std(state)
        guided = state + self.strength * float(self.weights[step]) * std * self.unit.to(state.device)
        guided_mean, guided_std = _mean_std(guided)
        guided = (guided - guided_mean) / (guided_std + 1e-6) * std + mean
        active = self.active.to(state.device, torch.bool).view(-1, *[1] * (state.ndim - 1))
        return torch.where(active, guided, state).to(x_next.dtype)
