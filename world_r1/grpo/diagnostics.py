"""Per-step diagnostics of the policy update: is there a signal to learn from, and where does the gradient come from.

* :func:`group_reward_stats`: the share of groups whose rewards are all equal (their advantages are 0: the group
  teaches nothing) and the within-group reward spread, the raw material of the advantages. Whether that spread is
  signal or chance needs the reward's retest noise: ``benchmarks.validation.chance`` scores the same videos again
  after 8-bit rounding and +-1/255 noise and reports the std of the difference (``retest std``), a full reward
  evaluation too costly to repeat every step; compare the logged spread with its figure for the same reward.
* :class:`GradientByTimestep`: the norm of the gradient each noise-level bucket contributes, before clipping, from
  the accumulated gradients (no extra forward or backward pass; one copy of the LoRA gradients per bucket change).
* :class:`TimestepProbe`: the noise level a Flow-GRPO micro-batch was trained at, read off the transformer's input,
  so :func:`world_r1.grpo.update.update_policy` needs no change to be bucketed.

Under FSDP the gradient norms are those of this process's shard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

GRAD_BUCKETS = 5  # noise-level buckets of the gradient norm: t000 (sigma < 0.2) ... t800 (sigma >= 0.8)


def sigma_bucket(sigma: float, buckets: int = GRAD_BUCKETS) -> str:
    """The name of ``sigma``'s bucket, by the lower edge of its timestep range: ``t000`` ... ``t800`` for 5 buckets
    (``sigma = 1`` falls in the last)."""
    index = min(max(int(sigma * buckets), 0), buckets - 1)
    return f"t{round(1000 * index / buckets):03d}"


def group_reward_stats(rewards: torch.Tensor, group_ids: torch.Tensor, atol: float = 1e-6) -> dict[str, float]:
    """Over the groups of ``rewards`` (N,) by ``group_ids`` (N,): ``all_equal_groups``, the share of groups whose
    finite rewards span at most ``atol``; ``group_spread``, the mean within-group std (population, as the advantages
    use); ``group_range``, the mean within-group max - min."""
    if rewards.ndim != 1 or rewards.shape != group_ids.shape:
        raise ValueError(
            f"rewards and group_ids must both be (N,), got {tuple(rewards.shape)} and {tuple(group_ids.shape)}"
        )
    rewards = rewards.detach().float().cpu()
    group_ids = group_ids.detach().cpu()
    equal, spreads, ranges = 0, [], []
    groups = group_ids.unique()
    for group in groups:
        values = rewards[group_ids == group]
        values = values[values.isfinite()]
        span = float(values.max() - values.min()) if len(values) else 0.0
        equal += span <= atol
        spreads.append(float(values.std(unbiased=False)) if len(values) else 0.0)
        ranges.append(span)
    count = max(len(groups), 1)
    return {"all_equal_groups": equal / count, "group_spread": sum(spreads) / count, "group_range": sum(ranges) / count}


class GradientByTimestep:
    """Splits the accumulated gradient of ``parameters`` by noise-level bucket.

    Route every backward through :meth:`backward` with its micro-batch's bucket. A run of consecutive backwards of
    one bucket is a block: its gradient is the accumulated gradient now minus the one at the block's start. A bucket
    trained in several blocks (several recorded steps in one bucket, inner epochs) adds their norms in quadrature,
    as if the blocks were orthogonal. A backward after the gradients were zeroed (an optimizer step) starts a block.
    """

    def __init__(self, parameters: Iterable[torch.Tensor]) -> None:
        self.parameters = list(parameters)
        self._bucket: str | None = None
        self._start: list[torch.Tensor | None] = []
        self._block = 0.0
        self._squares: dict[str, float] = {}

    def backward(self, loss: torch.Tensor, bucket: str, backward: Callable[[torch.Tensor], None]) -> None:
        """``backward(loss)``, with the gradient it adds counted to ``bucket``."""
        cleared = all(p.grad is None for p in self.parameters)
        if bucket != self._bucket or cleared:
            self._commit()
            self._bucket = bucket
            self._start = [None if p.grad is None else p.grad.detach().clone() for p in self.parameters]
        backward(loss)
        with torch.no_grad():
            total = torch.zeros((), dtype=torch.float64)
            for p, start in zip(self.parameters, self._start, strict=True):
                if p.grad is not None:
                    delta = p.grad.detach() if start is None else p.grad.detach() - start
                    total += delta.double().pow(2).sum().cpu()
        self._block = float(total)

    def _commit(self) -> None:
        if self._bucket is not None:
            self._squares[self._bucket] = self._squares.get(self._bucket, 0.0) + self._block
        self._block = 0.0

    def norms(self) -> dict[str, float]:
        """``{bucket: gradient norm}`` of every bucket trained so far (closing the current block)."""
        self._commit()
        self._bucket, self._start = None, []
        return {bucket: math.sqrt(square) for bucket, square in sorted(self._squares.items())}


class TimestepProbe:
    """The noise level of the last forward with gradient through ``modules`` (the adapted transformers): Wan's
    ``timestep`` input over 1000 (its largest entry: a held first frame has timestep 0). Forwards without gradient
    (the reference and old policies) leave it alone."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.sigma: float | None = None
        self._handles = [m.register_forward_pre_hook(self._hook, with_kwargs=True) for m in modules]

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        timestep = kwargs.get("timestep")
        if torch.is_grad_enabled() and isinstance(timestep, torch.Tensor):
            self.sigma = float(timestep.detach().float().max()) / 1000.0

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


@contextmanager
def bucketed_backward(
    modules: Sequence[nn.Module], parameters: Iterable[torch.Tensor], backward: Callable[[torch.Tensor], None]
) -> Iterator[tuple[Callable[[torch.Tensor], None], GradientByTimestep]]:
    """A ``backward`` that counts each gradient to the bucket of the noise level its loss was computed at (by a
    :class:`TimestepProbe` on ``modules``), and the :class:`GradientByTimestep` that holds the counts."""
    probe, tracker = TimestepProbe(modules), GradientByTimestep(parameters)

    def counted(loss: torch.Tensor) -> None:
        tracker.backward(loss, sigma_bucket(probe.sigma if probe.sigma is not None else 1.0), backward)

    try:
        yield counted, tracker
    finally:
        probe.close()
