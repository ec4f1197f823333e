"""Reward terms as evaluation metrics: flat per-video values and distributed means (torchmetrics).

Training and evaluation use the same :class:`~world_r1.rewards.Reward` modules, so a metric is exactly what the
reward optimised (one geometry core, two uses): a reward's output ``{"score": ..., "inlier_ratio": ...}`` under the
name ``epipolar`` becomes the metrics ``epipolar/score`` and ``epipolar/inlier_ratio``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric

from world_r1.geometry import GeometrySettings
from world_r1.rewards.base import Reward, score_all


@torch.no_grad()
def score_terms(
    terms: Mapping[str, Reward],
    videos: torch.Tensor,
    prompts: Sequence[str],
    known: Mapping[str, Sequence[str]] | None = None,
    geometry: GeometrySettings | None = None,
    **metadata: Any,
) -> dict[str, torch.Tensor]:
    """Every term's outputs on ``videos`` (B, F, 3, H, W) in [0, 1], flattened to ``{"<term>/<key>": (B,) float}`` on
    the CPU, under the training reward's rule for failures (:func:`~world_r1.rewards.base.score_safely`): a term
    that raises costs its own values (score 0, degenerate 1, the keys it is ``known`` to produce NaN, which
    :class:`RewardTermMeans` leaves out of the means). The geometric terms read one analysis of the batch made with
    ``geometry``; ``metadata`` (per-sample columns such as ``cameras``, see :class:`~world_r1.rewards.Reward`)
    reaches every term.
    """
    scored = score_all(terms, videos, prompts, geometry, metadata, known)
    return {f"{name}/{key}": value.cpu() for name, values in scored.items() for key, value in values.items()}


class RewardTermMeans(nn.Module):
    """One :class:`torchmetrics.MeanMetric` per ``"<term>/<key>"``, created at the first value seen for that key.

    ``compute()`` syncs across processes through torchmetrics (sums and weights are all-reduced, so uneven shards and
    zero-weight padding are exact). Every process must update the same keys: guaranteed when all of them score with
    the same terms (a failing term still reports its known keys, see :func:`score_terms`). NaN values are left out.
    """

    def __init__(self) -> None:
        super().__init__()
        self.means = nn.ModuleDict()
        self._names: dict[str, str] = {}  # ModuleDict keys cannot hold "." or be empty: metric name -> module key

    def keys(self) -> list[str]:
        """The metric names seen so far, in first-seen order."""
        return list(self._names)

    def update(self, values: Mapping[str, torch.Tensor], weight: torch.Tensor | None = None) -> None:
        """Add per-video ``values`` (each (B,)); ``weight`` (B,) counts each video (0 for padding), default 1."""
        for name, value in values.items():
            if name not in self._names:
                key = f"m{len(self._names)}"
                self._names[name] = key
                self.means[key] = MeanMetric(nan_strategy="ignore").to(value.device)
            metric = self.means[self._names[name]]
            value = value.float().to(metric.device)
            metric.update(value, torch.ones_like(value) if weight is None else weight.to(value))

    def compute(self) -> dict[str, float]:
        """``{name: mean}`` over all processes; a key whose values were all NaN gives NaN."""
        return {name: float(self.means[key].compute()) for name, key in self._names.items()}

    def reset(self) -> None:
        """Forget the values and the keys (the next evaluation may use other terms)."""
        self.means = nn.ModuleDict()
        self._names = {}
