"""The reward interface and its weighted composition, with the fault handling the training loop relies on."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


class Reward(nn.Module):
    """A reward: ``forward(videos, prompts, **metadata) -> dict`` of per-sample (B,) float tensors.

    ``videos`` are (B, F, 3, H, W) floats in [0, 1] on any device. The dict must hold ``"score"``, the main value
    in [0, 1] (higher is better); other keys are raw terms for logging (e.g. ``"inlier_ratio"``), and
    ``"degenerate"`` (0/1 per sample) marks inputs the reward could not judge and scored as worst.

    ``metadata`` carries per-sample columns of the batch, each a sequence of length B, to every term alike (as TRL
    hands dataset columns to its reward functions): ``cameras`` (an explicit camera description or None per sample,
    from a JSONL prompt file), ``prompt_ids``, and the step's ``phase``. A term takes the keywords it uses and
    ignores the rest.
    """

    def forward(self, videos: torch.Tensor, prompts: Sequence[str], **metadata: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def call_reward(
    term: nn.Module, videos: torch.Tensor, prompts: Sequence[str], metadata: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """``term(videos, prompts, **metadata)``, handing a term only the metadata keywords its ``forward`` declares (all
    of them with ``**metadata``), so rewards written as ``forward(videos, prompts)`` keep working."""
    parameters = inspect.signature(term.forward).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        metadata = {key: value for key, value in metadata.items() if key in parameters}
    return term(videos, prompts, **metadata)


def check_videos(videos: torch.Tensor) -> None:
    """Raise unless ``videos`` is (B, F, 3, H, W)."""
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"videos must be (B, F, 3, H, W) in [0, 1], got shape {tuple(videos.shape)}")


class WeightedReward(nn.Module):
    """``total = sum_k w_k * score_k`` over named reward terms, with per-term logging and timing.

    Only terms with a non-zero weight are evaluated, so a phase that re-weights (e.g. quality only) pays for nothing
    else. A term that raises, or gives a non-finite score for some samples, does not stop training: those samples get
    the worst score (0) and ``"<term>/degenerate"`` = 1, and the failure is logged.

    Returns ``{"total": (B,), "<term>": score (B,), "<term>/<raw>": (B,) ...}``; :attr:`last_timings` holds each
    evaluated term's wall time in seconds.
    """

    def __init__(self, terms: dict[str, Reward], weights: dict[str, float] | None = None) -> None:
        """
        Args:
            terms: name -> reward module.
            weights: name -> weight; a missing name has weight 1.0.
        """
        super().__init__()
        if not terms:
            raise ValueError("WeightedReward needs at least one term.")
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(terms))
        if unknown:
            raise ValueError(f"weights name unknown reward terms {unknown}; the terms are {sorted(terms)}.")
        self.terms = nn.ModuleDict(terms)
        self.weights = {name: float(weights.get(name, 1.0)) for name in terms}
        self.last_timings: dict[str, float] = {}

    def _check_weights(self, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(self.terms))
        if unknown:
            raise ValueError(f"phase weights name unknown reward terms {unknown}; the terms are {sorted(self.terms)}.")
        return {name: float(weights.get(name, 0.0)) for name in self.terms}

    @torch.no_grad()
    def forward(
        self,
        videos: torch.Tensor,
        prompts: Sequence[str],
        weights: dict[str, float] | None = None,
        **metadata: Any,
    ) -> dict[str, torch.Tensor]:
        """Score ``videos`` (B, F, 3, H, W); ``weights`` replaces the configured weights (missing names: 0);
        ``metadata`` (per-sample columns, see :class:`Reward`) reaches every term."""
        check_videos(videos)
        active = self._check_weights(weights) if weights is not None else self.weights
        batch = videos.shape[0]
        total = torch.zeros(batch, device=videos.device)
        out: dict[str, torch.Tensor] = {}
        self.last_timings = {}
        for name, weight in active.items():
            if weight == 0:
                continue
            start = time.perf_counter()
            terms = self._evaluate(name, videos, prompts, metadata)
            self.last_timings[name] = time.perf_counter() - start
            out[name] = terms.pop("score")
            out.update({f"{name}/{key}": value for key, value in terms.items()})
            total = total + weight * out[name]
        out["total"] = total
        return out

    def _evaluate(
        self, name: str, videos: torch.Tensor, prompts: Sequence[str], metadata: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        batch = videos.shape[0]
        try:
            raw = call_reward(self.terms[name], videos, prompts, metadata)
            terms = {k: v.detach().float().to(videos.device) for k, v in raw.items()}
        except Exception:  # a reward bug must cost one batch of scores, not the run
            log.exception("reward term %r failed on this batch; scoring it as worst (0)", name)
            return {
                "score": torch.zeros(batch, device=videos.device),
                "degenerate": torch.ones(batch, device=videos.device),
            }
        score = terms["score"]
        bad = ~torch.isfinite(score)
        degenerate = terms.get("degenerate", torch.zeros_like(score))
        terms["score"] = torch.where(bad, torch.zeros_like(score), score)
        terms["degenerate"] = torch.maximum(degenerate, bad.float())
        return terms
