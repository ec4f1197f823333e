"""Group-relative advantages: each sample's reward against the other samples of its prompt's group."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from world_r1.grpo.config import StdMode
from world_r1.settings import check_choice


class Advantages(NamedTuple):
    """``values`` (N,) float32 advantages; ``num_nonfinite``: rewards that were NaN/inf and were scored as worst;
    ``group_std``: the mean within-group std of the rewards, the signal GRPO learns from (0: nothing to learn); with
    a control covariate, of the rewards after its part is taken out. ``groups``: from :func:`gather_group_rewards`,
    the rewards (as given) and group ids of every process's samples, flat, which the per-step diagnostics read."""

    values: torch.Tensor
    num_nonfinite: int
    group_std: float = 0.0
    groups: tuple[torch.Tensor, torch.Tensor] | None = None


def _replace_nonfinite(rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Non-finite rewards become the minimum finite reward of their group (the batch's, if the group has none)."""
    finite = torch.isfinite(rewards)
    bad = int((~finite).sum())
    if bad == 0:
        return rewards, 0
    out = rewards.clone()
    fallback = rewards[finite].min() if finite.any() else rewards.new_zeros(())
    for g in group_ids[~finite].unique():
        members = group_ids == g
        good = members & finite
        out[members & ~finite] = rewards[good].min() if good.any() else fallback
    return out, bad


def _group_sums(values: torch.Tensor, inverse: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(G,) sum of ``values`` (N,) within each group (``inverse``: each sample's group index)."""
    return torch.zeros(num_groups, device=values.device).index_add_(0, inverse, values)


def _group_means(values: torch.Tensor, inverse: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(G,) mean of ``values`` (N,) within each group."""
    return _group_sums(values, inverse, num_groups) / _group_sums(torch.ones_like(values), inverse, num_groups)


def covariate_part(values: torch.Tensor, covariate: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """The part of ``values`` that a line in ``covariate`` explains within each group, centred on the group mean.

    ``values - covariate_part(...)`` ranks the samples of a group as if they all had the group's mean covariate:
    with the video's image motion as covariate, a group's consistency scores are compared at equal motion, so the
    advantage cannot tell "rigid" from "still". Per group: the least-squares slope ``b = cov(v, c) / var(c)``, and the
    part ``b * (c_i - mean c)``. A group whose covariate does not vary, and samples whose value or covariate is not
    finite, get 0 (they are left as they are).
    """
    if values.shape != covariate.shape or values.shape != group_ids.shape or values.ndim != 1:
        raise ValueError(
            f"values, covariate and group_ids must all be (N,), got {tuple(values.shape)}, {tuple(covariate.shape)}, "
            f"{tuple(group_ids.shape)}"
        )
    values, covariate = values.float(), covariate.float()
    finite = torch.isfinite(values) & torch.isfinite(covariate)
    _, inverse = torch.unique(group_ids, return_inverse=True)
    num_groups = int(inverse.max()) + 1
    weight = finite.float()
    v, c = torch.where(finite, values, 0.0), torch.where(finite, covariate, 0.0)
    counts = _group_sums(weight, inverse, num_groups).clamp(min=1)
    dv = (v - (_group_sums(v, inverse, num_groups) / counts)[inverse]) * weight
    dc = (c - (_group_sums(c, inverse, num_groups) / counts)[inverse]) * weight
    sxx, sxy = _group_sums(dc * dc, inverse, num_groups), _group_sums(dc * dv, inverse, num_groups)
    slope = torch.where(sxx > 1e-12, sxy / sxx.clamp(min=1e-12), 0.0)
    return slope[inverse] * dc


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    std_mode: str = "group",
    clip: float = 5.0,
    eps: float = 1e-4,
    controlled: torch.Tensor | None = None,
    covariate: torch.Tensor | None = None,
) -> Advantages:
    """``A_i = (r_i - mean_g) / (std_g + eps)``, clipped to ``[-clip, clip]``.

    Args:
        rewards: (N,) one reward per sample.
        group_ids: (N,) integer id of each sample's group (the samples of one prompt in one step).
        std_mode: "group" divides by each group's std (Flow-GRPO's per-prompt statistics); "global" by the std of
            all N rewards (the mean is always per group).
        clip: advantage clip.
        eps: added to the std, so a group of equal rewards gets zero advantages rather than a division by zero.
        controlled: (N,) the share of ``rewards`` to compare at equal ``covariate`` (e.g. the weighted consistency
            terms); its :func:`covariate_part` within each group is taken out of ``rewards`` first.
        covariate: (N,) what the controlled share is not to be credited for (e.g. the video's image motion).

    The std is the population std (``unbiased=False``, as numpy's ``np.std`` in Flow-GRPO). Non-finite rewards are
    counted and scored as the worst finite reward of their group, so they never poison the update.
    """
    if rewards.ndim != 1 or rewards.shape != group_ids.shape:
        raise ValueError(
            f"rewards and group_ids must both be (N,), got {tuple(rewards.shape)}, {tuple(group_ids.shape)}"
        )
    check_choice("std_mode", std_mode, StdMode)
    if (controlled is None) != (covariate is None):
        raise ValueError("group_advantages needs both controlled and covariate, or neither.")
    rewards = rewards.float()
    if controlled is not None:  # before the non-finite ones are replaced, so those stay their group's worst
        rewards = rewards - covariate_part(controlled, covariate, group_ids)
    rewards, bad = _replace_nonfinite(rewards, group_ids)
    _, inverse = torch.unique(group_ids, return_inverse=True)
    num_groups = int(inverse.max()) + 1
    centered = rewards - _group_means(rewards, inverse, num_groups)[inverse]
    group_std = _group_means(centered**2, inverse, num_groups).sqrt()
    std = group_std[inverse] if std_mode == "group" else rewards.std(unbiased=False).expand_as(rewards)
    return Advantages((centered / (std + eps)).clamp(-clip, clip), bad, float(group_std.mean()))


def gather_group_rewards(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    all_gather: Callable[[torch.Tensor], torch.Tensor],
    rank: int = 0,
    **kwargs,
) -> Advantages:
    """Advantages of this process's samples, computed over the full groups gathered from all processes.

    ``all_gather`` is e.g. ``LightningModule.all_gather``: it maps a local (N,) tensor to (world, N), or returns it
    unchanged on one process. Every process must hold the same number N of samples; ``rank`` is this process's row
    of the gathered tensors. ``kwargs`` go to :func:`group_advantages`. ``num_nonfinite`` counts local samples.
    """
    all_rewards = all_gather(rewards.float())
    all_ids = all_gather(group_ids)
    if all_rewards.ndim == 1:  # single process
        return group_advantages(rewards, group_ids, **kwargs)._replace(groups=(all_rewards, all_ids))
    for key in ("controlled", "covariate"):  # per-sample columns: gathered like the rewards
        if kwargs.get(key) is not None:
            kwargs[key] = all_gather(kwargs[key].float()).reshape(-1)
    result = group_advantages(all_rewards.reshape(-1), all_ids.reshape(-1), **kwargs)
    local = result.values.view(all_rewards.shape)[rank]
    groups = (all_rewards.reshape(-1), all_ids.reshape(-1))
    return Advantages(local, int((~torch.isfinite(rewards)).sum()), result.group_std, groups)
