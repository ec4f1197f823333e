"""One rectified-flow step as a Gaussian policy: the SDE step of Flow-GRPO with its log-probability.

Convention: sigma runs from 1 (noise) to 0 (data), ``x_sigma = (1 - sigma) x0 + sigma eps``, the transformer predicts
the velocity ``v = eps - x0``, and a step goes from ``sigma`` to ``sigma_next < sigma`` with ``Delta = sigma -
sigma_next``. The SDE with the same marginals as the ODE ``dx = v dsigma`` has, for a noise scale ``s``::

    mean = x - Delta * [v + s^2 / (2 sigma) * (x + (1 - sigma) v)],   std = s * sqrt(Delta)
"""

from __future__ import annotations

import math
from typing import NamedTuple, get_args

import torch

from world_r1.grpo.config import NoiseSchedule

NOISE_SCHEDULES = get_args(NoiseSchedule)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class SDEStep(NamedTuple):
    """Result of one step. ``prev_sample``/``mean``: shape of the sample; ``std``: broadcastable; ``log_prob``: (B,)."""

    prev_sample: torch.Tensor
    log_prob: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


def _per_sample(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A float or (B,) tensor as float32 of shape (B, 1, ..., 1), broadcastable against ``like``."""
    value = torch.as_tensor(value, dtype=torch.float32, device=like.device)
    if value.ndim == 0:
        value = value.expand(like.shape[0])
    if value.shape != (like.shape[0],):
        raise ValueError(f"sigma must be a float or of shape ({like.shape[0]},), got {tuple(value.shape)}")
    return value.view(-1, *([1] * (like.ndim - 1)))


def per_sample_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) mean of ``values`` (B, *) over its elements, or over those where ``mask`` (broadcastable) is 1."""
    if mask is None:
        return values.flatten(1).mean(dim=1)
    mask = mask.to(values).expand_as(values)
    return (values * mask).flatten(1).sum(dim=1) / mask.flatten(1).sum(dim=1)


def noise_scale(
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
    noise_level: float,
    noise_schedule: str = "flow_grpo",
    sigma_max: float = 1.0,
    sigma_min: float = 0.0,
) -> torch.Tensor:
    """The SDE noise scale ``s`` at ``sigma``.

    "flow_grpo" (Flow-GRPO): ``a * sqrt(sigma / (1 - sigma))``; at sigma = 1 the denominator uses the first sigma
    below 1 of the schedule, which for the first step is ``sigma_next`` (as Flow-GRPO does). "linear" (the World-R1
    release):
    ``a * (sigma_min + (sigma_max - sigma_min) * sigma)``; ``a`` scales it so ``noise_level=0`` is the ODE for both.
    """
    if noise_schedule == "flow_grpo":
        below_one = torch.where(sigma >= 1, sigma_next, sigma)
        return noise_level * torch.sqrt(sigma / (1 - below_one))
    if noise_schedule == "linear":
        return noise_level * (sigma_min + (sigma_max - sigma_min) * sigma)
    raise ValueError(f"noise_schedule must be one of {NOISE_SCHEDULES}, got {noise_schedule!r}")


def ode_step(
    velocity: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float
) -> torch.Tensor:
    """The Euler ODE step ``x - (sigma - sigma_next) * v``, in float32."""
    delta = _per_sample(sigma, sample) - _per_sample(sigma_next, sample)
    return sample.float() - delta * velocity.float()


def sde_step_with_logprob(
    velocity: torch.Tensor,
    sample: torch.Tensor,
    sigma: torch.Tensor | float,
    sigma_next: torch.Tensor | float,
    noise_level: float,
    prev_sample: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise_schedule: str = "flow_grpo",
    sigma_max: float = 1.0,
    sigma_min: float = 0.0,
    mask: torch.Tensor | None = None,
) -> SDEStep:
    """One SDE step from ``sigma`` to ``sigma_next`` and the log-probability of its result.

    Args:
        velocity: predicted ``eps - x0``, shape ``(B, *)`` like ``sample``.
        sample: the current latents ``x`` at ``sigma``, ``(B, *)``.
        sigma: float or ``(B,)``, in (0, 1].
        sigma_next: float or ``(B,)``, in [0, sigma).
        noise_level: ``a`` >= 0; 0 gives the Euler ODE step (``std`` 0, ``log_prob`` zeros: a point mass).
        prev_sample: if given, this next state is scored instead of sampling one (the policy-update path).
        generator: source of the step's Gaussian noise when sampling.
        noise_schedule: "flow_grpo" or "linear", see :func:`noise_scale`.
        mask: broadcastable to ``sample``, 1 on the elements the policy generates, 0 on elements it holds fixed (a
            conditioning first frame): the log-probability is taken over the free elements only.

    Returns:
        ``SDEStep``: ``prev_sample`` in the dtype of ``sample`` (scored input returned as given), ``mean`` float32,
        ``std`` float32 (B, 1, ..., 1), and ``log_prob`` (B,) float32: the mean over all non-batch elements of
        ``-(x_next - mean)^2 / (2 std^2) - log std - log sqrt(2 pi)``. All arithmetic is in float32.
    """
    if velocity.shape != sample.shape:
        raise ValueError(f"velocity {tuple(velocity.shape)} and sample {tuple(sample.shape)} must have one shape")
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    x, v = sample.float(), velocity.float()
    sigma_t, sigma_n = _per_sample(sigma, x), _per_sample(sigma_next, x)
    delta = sigma_t - sigma_n
    if torch.any(delta <= 0):
        raise ValueError("sigma_next must be smaller than sigma (sigma runs from 1 down to 0)")
    batch = x.shape[0]
    if noise_level == 0:
        mean = x - delta * v
        out = mean.to(sample.dtype) if prev_sample is None else prev_sample
        return SDEStep(out, torch.zeros(batch, device=x.device), mean, torch.zeros_like(sigma_t))
    s = noise_scale(sigma_t, sigma_n, noise_level, noise_schedule, sigma_max, sigma_min)
    mean = x - delta * (v + s**2 / (2 * sigma_t) * (x + (1 - sigma_t) * v))
    std = s * torch.sqrt(delta)
    if prev_sample is None:
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        next_sample = mean + std * eps
        prev_sample = next_sample.to(sample.dtype)
    else:
        next_sample = prev_sample.float()
    log_prob = -((next_sample.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - _LOG_SQRT_2PI
    return SDEStep(prev_sample, per_sample_mean(log_prob, mask), mean, std)
