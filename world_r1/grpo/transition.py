"""How a recorded denoising transition ``x -> x_next`` is scored as a Gaussian policy step.

Two kernels, one per way of sampling rollouts (``sampling.rollout``):

* ``sde`` (Flow-GRPO): the rollout draws ``x_next`` from the SDE step itself (:mod:`world_r1.grpo.sde`), so its
  log-probability is exact.
* ``euler`` (World-R1's release): the rollout is deterministic UniPC, and each recorded transition (the UniPC output,
  after the camera injection) is scored under a Gaussian around the Euler step with the velocity ``v`` of the state::

      mean = x + (sigma_next - sigma) v,   std = (sigma_min + (sigma_max - sigma_min) sigma) sqrt(sigma - sigma_next)

  with ``sigma_max`` and ``sigma_min`` the first and last sigma of the sampler's schedule (the last is 0 for Wan's
  UniPC); the log-density is the mean over the latent elements, not the sum. No noise is ever drawn: the policy is
  trained to make the transitions its own sampler took more or less likely, and, where the update changes nothing
  else, its gradient is ``-A grad log p``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from world_r1.grpo.sde import SDEStep, _per_sample, per_sample_mean, sde_step_with_logprob

KernelKind = Literal["sde", "euler"]
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def euler_step_with_logprob(
    velocity: torch.Tensor,
    sample: torch.Tensor,
    sigma: torch.Tensor | float,
    sigma_next: torch.Tensor | float,
    next_sample: torch.Tensor,
    sigma_max: float,
    sigma_min: float = 0.0,
    mask: torch.Tensor | None = None,
) -> SDEStep:
    """The release's log-probability of ``next_sample`` given ``sample`` (module docstring), in float32.

    Args:
        velocity, sample, next_sample: ``(B, *)`` of one shape.
        sigma, sigma_next: floats or ``(B,)``, ``sigma_next < sigma``.
        sigma_max, sigma_min: the first and last sigma of the sampler's schedule.
        mask: broadcastable to ``sample``: 1 on the generated elements, 0 on held ones (excluded from the mean).

    Returns:
        ``SDEStep`` with ``prev_sample`` = ``next_sample`` as given, ``mean`` (float32), ``std`` ((B, 1, ..., 1)) and
        ``log_prob`` (B,).
    """
    if not velocity.shape == sample.shape == next_sample.shape:
        raise ValueError(
            f"velocity {tuple(velocity.shape)}, sample {tuple(sample.shape)} and next_sample "
            f"{tuple(next_sample.shape)} must have one shape"
        )
    x, v = sample.float(), velocity.float()
    sigma_t, sigma_n = _per_sample(sigma, x), _per_sample(sigma_next, x)
    delta = sigma_t - sigma_n
    if torch.any(delta <= 0):
        raise ValueError("sigma_next must be smaller than sigma (sigma runs from 1 down to 0)")
    mean = x - delta * v
    std = (sigma_min + (sigma_max - sigma_min) * sigma_t) * torch.sqrt(delta)
    log_prob = -((next_sample.detach().float() - mean) ** 2) / (2 * std**2) - torch.log(std) - _LOG_SQRT_2PI
    return SDEStep(next_sample, per_sample_mean(log_prob, mask), mean, std)


@dataclass(frozen=True)
class TransitionKernel:
    """The Gaussian a rollout's recorded transitions are scored under: ``kind`` "sde" with the SDE's ``noise_level``
    and ``noise_schedule``, or "euler" (the release) with its schedule's ``sigma_max`` and ``sigma_min``."""

    kind: KernelKind = "sde"
    noise_level: float = 0.7
    noise_schedule: str = "flow_grpo"
    sigma_max: float = 1.0
    sigma_min: float = 0.0

    def score(
        self,
        velocity: torch.Tensor,
        sample: torch.Tensor,
        sigma: float,
        sigma_next: float,
        next_sample: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> SDEStep:
        """The step's mean, std and the log-probability of ``next_sample`` under this kernel."""
        if self.kind == "euler":
            return euler_step_with_logprob(
                velocity, sample, sigma, sigma_next, next_sample, self.sigma_max, self.sigma_min, mask
            )
        return sde_step_with_logprob(
            velocity,
            sample,
            sigma,
            sigma_next,
            self.noise_level,
            prev_sample=next_sample,
            noise_schedule=self.noise_schedule,
            sigma_max=self.sigma_max,
            sigma_min=self.sigma_min,
            mask=mask,
        )
