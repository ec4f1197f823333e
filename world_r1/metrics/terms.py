"""Reward terms as evaluation metrics: flat per-video values and distributed means (torchmetrics).

Training and evaluation use the same :class:`~world_r1.rewards.Reward` modules, so a metric is exactly what the
reward optimised (one geometry core, two uses): a reward's output ``{"score": ..., "inlier_ratio": ...}`` under the
name ``epipolar`` becomes the metrics ``epipolar/score`` and ``epipolar/inlier_ratio``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric

from world_r1.rewards.base import Reward, call_reward, check_videos

log = logging.getLogger(__name__)


@torch.no_grad()
def score_terms(
    terms: Mapping[str, Reward],
    videos: torch.Tensor,
    prompts: Sequence[str],
    known: Mapping[str, Sequence[str]] | None = None,
    **metadata: Any,
) -> dict[str, torch.Tensor]:
    """Every term's outputs on ``videos`` (B, F, 3, H, W) in [0, 1], flattened to ``{"<term>/<key>": (B,) float}``.

    A term that raises costs its own values, not the evaluation: its score is the worst (0), ``degenerate`` is 1, and
    the other keys it is ``known`` to produce (``known[term]``, e.g. from an earlier batch) are NaN, which
    :class:`RewardTermMeans` leaves out of the means. Non-finite scores count as 0 and degenerate, as in training.
    ``metadata`` (per-sample columns such as ``cameras``, see :class:`~world_r1.rewards.Reward`) reaches every term.
    """
    check_videos(videos)
    batch = videos.shape[0]
    out: dict[str, torch.Tensor] = {}
    for name, term in terms.items():
        try:
            raw = call_reward(term, videos, prompts, metadata)
            values = {key: value.detach().float().reshape(batch).cpu() for key, value in raw.items()}
        except Exception:  # one broken term must not hide the others' numbers
            log.exception("reward term %r failed on an evaluation batch; its score counts as 0", name)
            values = {key: torch.full((batch,), float("nan")) for key in (known or {}).get(name, ())}
            values |= {"score": torch.zeros(batch), "degenerate": torch.ones(batch)}
        bad = ~torch.isfinite(values["score"])
        if bad.any():
            values["score"] = torch.where(bad, torch.zeros_like(values["score"]), values["score"])
            values["degenerate"] = torch.maximum(values.get("degenerate", torch.zeros(batch)), bad.float())
        out |= {f"{name}/{key}": value for key, value in values.items()}
    return out


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
