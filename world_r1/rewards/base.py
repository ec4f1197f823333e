"""The reward interface, the geometric base class, and the weighted composition with the one rule for failures."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from world_r1.geometry import GeometrySettings, VideoGeometry, analyse

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


def check_videos(videos: torch.Tensor) -> None:
    """Raise unless ``videos`` is (B, F, 3, H, W)."""
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"videos must be (B, F, 3, H, W) in [0, 1], got shape {tuple(videos.shape)}")


def check_batch(videos: torch.Tensor, prompts: Sequence[str]) -> tuple[int, int]:
    """``(batch, frames)`` of ``videos`` (B, F, 3, H, W) with one prompt per video; raises otherwise."""
    check_videos(videos)
    batch, num_frames = videos.shape[:2]
    if len(prompts) != batch:
        raise ValueError(f"got {len(prompts)} prompts for {batch} videos")
    return batch, num_frames


class GeometricReward(Reward):
    """A term read off the geometry core's analysis of the batch (frame pairs, matches, two-view geometry).

    :class:`WeightedReward` and :func:`~world_r1.metrics.score_terms` analyse a batch once, with one
    :class:`~world_r1.geometry.GeometrySettings` for every term, and hand the result over as ``analysis``; a term
    called on its own analyses the videos with the default settings. This base class checks the shape and gives
    videos with fewer than 2 frames (no pair to compare) :attr:`worst` values; subclasses implement :meth:`score`.
    """

    #: the raw outputs with the values a video that cannot be judged gets (``degenerate`` is set to 1); subclasses
    #: set theirs in ``__init__``
    worst: Mapping[str, float]

    def forward(
        self,
        videos: torch.Tensor,
        prompts: Sequence[str],
        analysis: VideoGeometry | None = None,
        **metadata: Any,
    ) -> dict[str, torch.Tensor]:
        check_videos(videos)
        if videos.shape[1] < 2:
            return self.worst_case(videos.shape[0], videos.device)
        if analysis is None:
            analysis = analyse(videos, self.standalone_settings())
        if analysis.num_videos != videos.shape[0]:
            raise ValueError(f"the analysis holds {analysis.num_videos} videos, the batch {videos.shape[0]}.")
        return self.score(videos, prompts, analysis, **metadata)

    def score(
        self, videos: torch.Tensor, prompts: Sequence[str], analysis: VideoGeometry, **metadata: Any
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def standalone_settings(self) -> GeometrySettings:
        """The settings of the analysis a term called on its own makes (the defaults, or what the term needs)."""
        return GeometrySettings()

    def check_settings(self, settings: GeometrySettings) -> None:
        """Raise, naming the fix, where an analysis made with ``settings`` lacks what this term reads; the composite
        calls it at start-up, so a configuration error does not surface as degenerate scores."""

    def worst_case(self, batch: int, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Every raw output at its :attr:`worst` value and ``degenerate`` 1, for ``batch`` videos."""
        worst = getattr(self, "worst", {"score": 0.0})
        out = {key: torch.full((batch,), float(value), device=device) for key, value in worst.items()}
        out["degenerate"] = torch.ones(batch, device=device)
        return out


def call_reward(
    term: nn.Module, videos: torch.Tensor, prompts: Sequence[str], metadata: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """``term(videos, prompts, **metadata)``, handing a term only the metadata keywords its ``forward`` declares (all
    of them with ``**metadata``), so rewards written as ``forward(videos, prompts)`` keep working."""
    parameters = inspect.signature(term.forward).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        metadata = {key: value for key, value in metadata.items() if key in parameters}
    return term(videos, prompts, **metadata)


def score_safely(
    name: str,
    term: nn.Module,
    videos: torch.Tensor,
    prompts: Sequence[str],
    metadata: Mapping[str, Any],
    known: Sequence[str] = (),
) -> dict[str, torch.Tensor]:
    """One term's outputs (each (B,) float32 on the videos' device) under the one rule for failures: a term that
    raises costs its own values, not the run (``score`` 0, ``degenerate`` 1, the ``known`` raw keys NaN: not
    measured), and a non-finite score counts as 0 and degenerate for those samples only."""
    batch, device = videos.shape[0], videos.device
    try:
        raw = call_reward(term, videos, prompts, metadata)
        values = {key: value.detach().float().reshape(batch).to(device) for key, value in raw.items()}
    except Exception:  # a reward bug must cost one batch of scores, not the run
        log.exception("reward term %r failed on this batch; scoring it as worst (0)", name)
        values = {key: torch.full((batch,), float("nan"), device=device) for key in known}
        values |= {"score": torch.zeros(batch, device=device), "degenerate": torch.ones(batch, device=device)}
        return values
    score = values["score"]
    bad = ~torch.isfinite(score)
    values["score"] = torch.where(bad, torch.zeros_like(score), score)
    values["degenerate"] = torch.maximum(values.get("degenerate", torch.zeros_like(score)), bad.float())
    return values


def score_all(
    terms: Mapping[str, nn.Module],
    videos: torch.Tensor,
    prompts: Sequence[str],
    geometry: GeometrySettings | None = None,
    metadata: Mapping[str, Any] | None = None,
    known: Mapping[str, Sequence[str]] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """``{name: outputs}`` of every term on one batch (see :func:`score_safely`), the geometric terms reading one
    analysis of the batch made with ``geometry`` (default settings if None). ``timings`` receives each term's wall
    time in seconds (the analysis is counted in the first geometric term's)."""
    check_videos(videos)
    for term in terms.values():
        if isinstance(term, GeometricReward):
            term.check_settings(geometry or GeometrySettings())
    metadata = dict(metadata or {})
    analysis: VideoGeometry | None = None
    analysis_failed = False
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, term in terms.items():
        start = time.perf_counter()
        extra = metadata
        if isinstance(term, GeometricReward) and videos.shape[1] >= 2:
            if analysis is None and not analysis_failed:
                try:
                    analysis = analyse(videos, geometry)
                except Exception:  # the core itself failed: every geometric term of this batch is worst
                    log.exception("the geometry analysis failed on this batch; its geometric terms score 0")
                    analysis_failed = True
            if analysis_failed:
                out[name] = term.worst_case(videos.shape[0], videos.device)
                continue
            extra = {**metadata, "analysis": analysis}
        out[name] = score_safely(name, term, videos, prompts, extra, (known or {}).get(name, ()))
        if timings is not None:
            timings[name] = time.perf_counter() - start
    return out


class WeightedReward(nn.Module):
    """``total = sum_k w_k * score_k`` over named reward terms, with per-term logging and timing.

    Only terms with a non-zero weight are evaluated, so a phase that re-weights (e.g. quality only) pays for nothing
    else. The geometric terms read one analysis of the batch made with ``geometry``. A term that raises, or gives a
    non-finite score for some samples, does not stop training (:func:`score_safely`): those samples get the worst
    score (0) and ``"<term>/degenerate"`` = 1, and the failure is logged.

    Returns ``{"total": (B,), "<term>": score (B,), "<term>/<raw>": (B,) ...}``; :attr:`last_timings` holds each
    evaluated term's wall time in seconds.
    """

    def __init__(
        self,
        terms: dict[str, Reward],
        weights: dict[str, float] | None = None,
        geometry: GeometrySettings | None = None,
    ) -> None:
        """
        Args:
            terms: name -> reward module.
            weights: name -> weight; a missing name has weight 1.0.
            geometry: how the geometric terms' shared analysis of each batch is made (default settings if None).
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
        self.geometry = geometry or GeometrySettings()
        for term in terms.values():
            if isinstance(term, GeometricReward):
                term.check_settings(self.geometry)
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
        active = self._check_weights(weights) if weights is not None else self.weights
        active = {name: weight for name, weight in active.items() if weight != 0}
        self.last_timings = {}
        terms = {name: self.terms[name] for name in active}
        scored = score_all(terms, videos, prompts, self.geometry, metadata, timings=self.last_timings)
        total = torch.zeros(videos.shape[0], device=videos.device)
        out: dict[str, torch.Tensor] = {}
        for name, values in scored.items():
            values = dict(values)
            out[name] = values.pop("score")
            out.update({f"{name}/{key}": value for key, value in values.items()})
            total = total + active[name] * out[name]
        out["total"] = total
        return out
