"""3D consistency from two-view geometry: do the matches across frames obey one rigid epipolar geometry?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from world_r1.geometry import GeometrySettings, shared_analysis
from world_r1.rewards.base import Reward, check_videos


def parallax_gate(parallax_px: torch.Tensor, min_parallax_px: float) -> torch.Tensor:
    """A ramp from 0 (no image motion) to 1 (median match displacement >= ``min_parallax_px``).

    Frozen frames satisfy any epipolar constraint perfectly, so 3D credit is only given for real camera motion.
    """
    if min_parallax_px <= 0:
        return torch.ones_like(parallax_px)
    return (parallax_px / min_parallax_px).clamp(0.0, 1.0)


class EpipolarReward(Reward):
    """Per video: ``score = mean over frame pairs of inlier_ratio * support * gate(parallax)``, in [0, 1].

    ``inlier_ratio`` is the share of matches within ``inlier_px`` (Sampson distance) of the pair's robust fundamental
    matrix: high for a rigid scene, falling as the frames morph. ``support = min(1, matches / full_support)``: a
    fundamental matrix (7 degrees of freedom) fits a handful of chance matches between unrelated frames, so few
    matches earn little credit. Degenerate pairs (too few matches, RANSAC failure: black, constant or unrelated
    frames, 1-frame videos) score 0 and set ``degenerate``.

    Raw terms: ``inlier_ratio``, ``sampson_px`` (median, valid pairs; NaN with none, never a perfect-looking 0),
    ``matches``, ``parallax_px``, ``degenerate``.
    """

    def __init__(
        self,
        gaps: tuple[int, ...] = (4,),
        max_pairs: int = 4,
        max_side: int = 192,
        num_features: int = 256,
        ratio: float = 0.9,
        inlier_px: float = 0.5,
        ransac_px: float = 1.0,
        ransac_iters: int = 8,
        min_matches: int = 16,
        min_parallax_px: float = 2.0,
        full_support: int = 64,
    ) -> None:
        """
        Args:
            gaps: frame gaps of the pairs compared.
            max_pairs: pairs per gap, spread over the video.
            max_side: frames are analysed with their long side resized to at most this (speed).
            num_features: SIFT keypoints per frame.
            ratio: Lowe ratio for matching.
            inlier_px: Sampson distance (analysis pixels) under which a match is consistent.
            ransac_px: RANSAC inlier threshold.
            ransac_iters: RANSAC batches of minimal samples (2048 each); the budget caps the cost of unrelated frames.
            min_matches: fewer matches make a pair degenerate.
            min_parallax_px: median displacement for full credit (analysis pixels); below it the score ramps to 0.
            full_support: matches per pair for full credit.
        """
        super().__init__()
        self.settings = GeometrySettings(
            gaps, max_pairs, max_side, num_features, ratio, ransac_px, inlier_px, ransac_iters, min_matches
        )
        self.min_parallax_px = min_parallax_px
        self.full_support = full_support

    @torch.no_grad()
    def forward(self, videos: torch.Tensor, prompts: Sequence[str], **metadata: Any) -> dict[str, torch.Tensor]:
        check_videos(videos)
        batch = videos.shape[0]
        if videos.shape[1] < 2:
            zeros = videos.new_zeros(batch)
            return {"score": zeros, "inlier_ratio": zeros, "sampson_px": zeros + math.nan, "degenerate": zeros + 1}
        analysis = shared_analysis(videos, self.settings)
        g = analysis.geometry
        valid = analysis.per_video(g.valid.float())
        inliers = analysis.per_video(g.inlier_ratio)
        gate = parallax_gate(analysis.per_video(g.parallax_px), self.min_parallax_px)
        support = (analysis.per_video(g.num_matches) / self.full_support).clamp(max=1.0)
        sampson = analysis.per_video(torch.where(g.valid, g.sampson_px, torch.zeros_like(g.sampson_px)))
        valid_count = valid.sum(1)
        return {
            "score": (inliers * support * gate).mean(1),
            "inlier_ratio": inliers.mean(1),
            # no valid pair: no error to report (NaN, which evaluation means leave out), not a perfect 0
            "sampson_px": torch.where(
                valid_count > 0, sampson.sum(1) / valid_count.clamp_min(1), videos.new_full((batch,), math.nan)
            ),
            "matches": analysis.per_video(g.num_matches).mean(1),
            "parallax_px": analysis.per_video(g.parallax_px).mean(1),
            "degenerate": (valid_count < valid.shape[1]).float(),
        }


class MotionReward(Reward):
    """``score = mean over frame pairs of gate(median match displacement) * coherent``: rewards visible motion.

    A pair's motion counts only when one rigid two-view geometry explains it (a valid pair with at least
    ``min_inlier_ratio`` of its matches within ``inlier_px``): chance matches between noise or unrelated frames
    have large displacements but no coherent motion. Raw terms: ``parallax_px`` and ``degenerate`` (some pair had
    too few matches or no model; those pairs score 0).
    """

    def __init__(
        self,
        min_parallax_px: float = 2.0,
        min_inlier_ratio: float = 0.5,
        gaps: tuple[int, ...] = (4,),
        max_side: int = 192,
        num_features: int = 256,
    ) -> None:
        """
        Args:
            min_parallax_px: displacement (analysis pixels) earning full credit.
            min_inlier_ratio: share of epipolar-consistent matches for a pair's motion to count.
            gaps: frame gaps measured.
            max_side: analysis resolution (long side).
            num_features: SIFT keypoints per frame.
        """
        super().__init__()
        self.min_parallax_px, self.min_inlier_ratio = min_parallax_px, min_inlier_ratio
        self.settings = GeometrySettings(gaps=gaps, max_side=max_side, num_features=num_features)

    @torch.no_grad()
    def forward(self, videos: torch.Tensor, prompts: Sequence[str], **metadata: Any) -> dict[str, torch.Tensor]:
        check_videos(videos)
        batch = videos.shape[0]
        if videos.shape[1] < 2:
            zeros = videos.new_zeros(batch)
            return {"score": zeros, "parallax_px": zeros, "degenerate": zeros + 1}
        analysis = shared_analysis(videos, self.settings)
        g = analysis.geometry
        coherent = g.valid & (g.inlier_ratio >= self.min_inlier_ratio)
        gate = parallax_gate(g.parallax_px, self.min_parallax_px) * coherent.float()
        return {
            "score": analysis.per_video(gate).mean(1),
            "parallax_px": analysis.per_video(g.parallax_px).mean(1),
            "degenerate": (~analysis.per_video(g.valid)).any(1).float(),
        }
