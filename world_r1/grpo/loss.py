"""The Flow-GRPO objective on one recorded SDE step: clipped surrogate plus a KL to the reference policy."""

from __future__ import annotations

from typing import NamedTuple

import torch

from world_r1.grpo.sde import per_sample_mean


class GRPOLoss(NamedTuple):
    """``loss`` carries the gradient; the other fields are detached statistics for logging."""

    loss: torch.Tensor
    policy_loss: torch.Tensor
    kl: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor
    ratio: torch.Tensor


def gaussian_kl(
    mean: torch.Tensor, ref_mean: torch.Tensor, std: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """KL between two Gaussians of equal std, per sample (B,): mean over elements (those where ``mask`` is 1, when
    given: the generated ones) of ``(mu - mu_ref)^2 / (2 std^2)``."""
    return per_sample_mean((mean - ref_mean) ** 2 / (2 * std**2), mask)


def grpo_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    beta: float = 0.0,
    mean: torch.Tensor | None = None,
    ref_mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> GRPOLoss:
    """``mean(max(-A r, -A clip(r, 1-eps, 1+eps))) + beta * KL`` with ``r = exp(log_prob - old_log_prob)``.

    Args:
        log_prob: (B,) log-probability of the recorded next state under the current policy (with grad).
        old_log_prob: (B,) the same under the policy that sampled it (no grad).
        advantages: (B,) group-normalised advantages.
        clip_range: ratio clip epsilon.
        beta: KL weight; with beta > 0, ``mean`` (current policy's step mean, with grad), ``ref_mean`` (the
            reference's) and ``std`` are required.
        mask: 1 on the elements the policy generates, 0 on held ones (a conditioning first frame) for the KL.

    ``approx_kl`` is ``0.5 * mean((log_prob - old_log_prob)^2)``; ``clip_fraction`` the share of ``|r - 1| > eps``.
    """
    if not (log_prob.shape == old_log_prob.shape == advantages.shape) or log_prob.ndim != 1:
        raise ValueError("log_prob, old_log_prob and advantages must all be (B,)")
    log_ratio = log_prob - old_log_prob.detach()
    ratio = torch.exp(log_ratio)
    advantages = advantages.detach()
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    policy_loss = torch.maximum(unclipped, clipped).mean()
    if beta > 0:
        if mean is None or ref_mean is None or std is None:
            raise ValueError("beta > 0 needs mean, ref_mean and std for the KL term")
        kl = gaussian_kl(mean, ref_mean.detach(), std.detach(), mask).mean()
    else:
        kl = log_prob.new_zeros(())
    loss = policy_loss + beta * kl
    with torch.no_grad():
        approx_kl = 0.5 * (log_ratio**2).mean()
        clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
    return GRPOLoss(loss, policy_loss.detach(), kl.detach(), approx_kl, clip_fraction, ratio.detach().mean())
