"""3D consistency from two-view geometry: do the matches across frames obey one rigid epipolar geometry?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from world_r1.geometry import VideoGeometry
from world_r1.rewards.base import GeometricReward


def parallax_gate(parallax_px: torch.Tensor, min_parallax_px: float) -> torch.Tensor:
    """A ramp from 0 (no image motion) to 1 (median match displacement >= ``min_parallax_px``).

    Frozen frames satisfy any epipolar constraint perfectly, so 3D credit is only given for real camera motion.
    """
    if min_parallax_px <= 0:
        return torch.ones_like(parallax_px)
    return (parallax_px / min_parallax_px).clamp(0.0, 1.0)


def motion_weighted_mean(
    values: torch.Tensor, parallax_px: torch.Tensor, valid: torch.Tensor, min_parallax_px: float
) -> torch.Tensor:
    """Per video (B,), a pair consistency ``values`` (B, P) averaged where the camera moves.

    Each valid pair weighs its own parallax gate and each invalid pair counts fully as a failure (value 0); the mean
    is scaled by the gate of the video's largest valid parallax. So frozen pairs earn no credit and dilute nothing, a
    frozen video scores 0, and once the gate is full more motion earns nothing more: a slow rigid video is as
    consistent as a fast one.
    """
    gate = parallax_gate(parallax_px, min_parallax_px)
    weight = torch.where(valid, gate, torch.ones_like(gate))
    values = torch.where(valid, values, torch.zeros_like(values))
    mean = (weight * values).sum(1) / weight.sum(1).clamp_min(1e-6)
    moving = parallax_gate(torch.where(valid, parallax_px, torch.zeros_like(parallax_px)).amax(1), min_parallax_px)
    return moving * mean


class EpipolarReward(GeometricReward):
    """Per video: ``score`` in [0, 1] is ``inlier_ratio * support`` of each frame pair, averaged where the camera
    moves (:func:`motion_weighted_mean`).

    ``inlier_ratio`` is the share of matches within ``inlier_px`` (Sampson distance, the geometry settings') of the
    pair's robust fundamental matrix: high for a rigid scene, falling as the frames morph. ``support = min(1, matches
    / full_support)``: a fundamental matrix (7 degrees of freedom) fits a handful of chance matches between unrelated
    frames, so few matches earn little credit. The motion gate ramps to full credit at ``min_parallax_px`` of median
    displacement and stays flat above it, so more motion earns nothing more. Degenerate pairs (too few matches,
    RANSAC failure: black, constant or unrelated frames) score 0 and set ``degenerate``.

    Raw terms: ``inlier_ratio``, ``sampson_px`` (mean over pairs of their median Sampson distance, a pair with no
    geometry counting as ``max_error_px``: finite, and never a perfect-looking 0), ``matches``, ``parallax_px``,
    ``degenerate``.
    """

    def __init__(self, min_parallax_px: float = 2.0, full_support: int = 64, max_error_px: float = 5.0) -> None:
        """
        Args:
            min_parallax_px: median displacement for full credit (analysis pixels); below it the score ramps to 0.
            full_support: matches per pair for full credit.
            max_error_px: the Sampson error reported for a pair without a geometry (and the cap of the others).
        """
        super().__init__()
        if full_support < 1 or max_error_px <= 0:
            raise ValueError("EpipolarReward needs full_support >= 1 and max_error_px > 0.")
        self.min_parallax_px = min_parallax_px
        self.full_support = full_support
        self.max_error_px = max_error_px
        self.worst = {"score": 0.0, "inlier_ratio": 0.0, "sampson_px": max_error_px, "matches": 0.0, "parallax_px": 0.0}

    @torch.no_grad()
    def score(
        self, videos: torch.Tensor, prompts: Sequence[str], analysis: VideoGeometry, **metadata: Any
    ) -> dict[str, torch.Tensor]:
        g = analysis.geometry
        valid = analysis.per_video(g.valid)
        inliers = analysis.per_video(g.inlier_ratio)
        parallax = analysis.per_video(g.parallax_px)
        support = (analysis.per_video(g.num_matches) / self.full_support).clamp(max=1.0)
        ceiling = torch.full_like(g.sampson_px, self.max_error_px)
        error = torch.where(g.valid, g.sampson_px.clamp(max=self.max_error_px), ceiling)
        return {
            "score": motion_weighted_mean(inliers * support, parallax, valid, self.min_parallax_px),
            "inlier_ratio": inliers.mean(1),
            "sampson_px": analysis.per_video(error).mean(1),
            "matches": analysis.per_video(g.num_matches).mean(1),
            "parallax_px": parallax.mean(1),
            "degenerate": (~valid).any(1).float(),
        }


def coherence_ramp(inlier_ratio: torch.Tensor, threshold: float, width: float) -> torch.Tensor:
    """0 below ``threshold - width / 2``, 1 above ``threshold + width / 2``, linear between (``width`` 0: a step).

    A step flips on pairs near the threshold at changes no one can see and makes a reward of them chance (on the
    mini Wan, whose pairs sit near 0.5: retest correlation 0.35 after 8-bit rounding, ``benchmarks.reward_chance``).
    """
    if width <= 0:
        return (inlier_ratio >= threshold).float()
    return ((inlier_ratio - (threshold - width / 2)) / width).clamp(0.0, 1.0)


class MotionReward(GeometricReward):
    """``score = mean over frame pairs of gate(median match displacement) * coherent``: rewards visible motion.

    A pair's motion counts only as far as one rigid two-view geometry explains it: ``coherent`` ramps from 0 to 1 as
    the pair's inlier ratio (matches within ``inlier_px`` of its fundamental matrix) crosses ``min_inlier_ratio``
    (:func:`coherence_ramp`); chance matches between noise or unrelated frames have large displacements but no
    coherent motion. Raw terms: ``parallax_px`` and ``degenerate`` (some pair had too few matches or no model; those
    pairs score 0).
    """

    def __init__(
        self, min_parallax_px: float = 2.0, min_inlier_ratio: float = 0.5, coherence_width: float = 0.2
    ) -> None:
        """
        Args:
            min_parallax_px: displacement (analysis pixels) earning full credit.
            min_inlier_ratio: share of epipolar-consistent matches at which a pair's motion counts half.
            coherence_width: width of the inlier-ratio ramp from not counting to counting (0: a hard threshold).
        """
        super().__init__()
        if coherence_width < 0:
            raise ValueError(f"MotionReward.coherence_width must be >= 0, got {coherence_width}.")
        self.min_parallax_px, self.min_inlier_ratio = min_parallax_px, min_inlier_ratio
        self.coherence_width = coherence_width
        self.worst = {"score": 0.0, "parallax_px": 0.0}

    @torch.no_grad()
    def score(
        self, videos: torch.Tensor, prompts: Sequence[str], analysis: VideoGeometry, **metadata: Any
    ) -> dict[str, torch.Tensor]:
        g = analysis.geometry
        ramp = coherence_ramp(g.inlier_ratio, self.min_inlier_ratio, self.coherence_width)
        coherent = torch.where(g.valid, ramp, torch.zeros_like(ramp))  # no geometry: no credit (and no NaN)
        gate = parallax_gate(g.parallax_px, self.min_parallax_px) * coherent
        return {
            "score": analysis.per_video(gate).mean(1),
            "parallax_px": analysis.per_video(g.parallax_px).mean(1),
            "degenerate": (~analysis.per_video(g.valid)).any(1).float(),
        }
