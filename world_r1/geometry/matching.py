"""Keypoints, descriptors and matches for many frames at once, with no downloaded weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.feature import SIFTFeatureScaleSpace, get_laf_center, match_smnn_batched


@dataclass
class Features:
    """Keypoints (N, K, 2) in pixels (x, y), descriptors (N, K, D), and a validity mask (N, K) per frame."""

    keypoints: torch.Tensor
    descriptors: torch.Tensor
    mask: torch.Tensor


class SIFTDetector(torch.nn.Module):
    """Kornia's scale-space SIFT with the pyramid descriptor backend: it accepts a batch of frames, so every frame a
    reward needs is detected in one call (the one-frame-at-a-time ``SIFTFeature`` is ~5x slower per frame)."""

    def __init__(self, num_features: int = 512) -> None:
        super().__init__()
        self.sift = SIFTFeatureScaleSpace(num_features=num_features, descriptor_backend="pyramid")

    @torch.no_grad()
    def forward(self, gray: torch.Tensor) -> Features:
        """``gray`` (N, 1, H, W) in [0, 1] -> :class:`Features`; frames with no texture get an all-False mask."""
        lafs, responses, descriptors = self.sift(gray)
        keypoints = get_laf_center(lafs)
        mask = torch.isfinite(responses) & (responses.abs() > 0) & torch.isfinite(descriptors).all(-1)
        return Features(keypoints, torch.nan_to_num(descriptors), mask)


@dataclass
class PairMatches:
    """Matches of P frame pairs: ``points1``/``points2`` (M, 2) pixel coordinates and ``pair`` (M,) their pair index."""

    points1: torch.Tensor
    points2: torch.Tensor
    pair: torch.Tensor
    num_pairs: int

    def of_pair(self, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        keep = self.pair == p
        return self.points1[keep], self.points2[keep]


def match_pairs(features: Features, first: torch.Tensor, second: torch.Tensor, ratio: float = 0.9) -> PairMatches:
    """Mutual nearest neighbours passing Lowe's ratio test both ways, for frame pairs ``(first[p], second[p])``.

    ``first``/``second`` (P,) index the frames of ``features``; all pairs are matched in one batched call.
    """
    if first.numel() == 0:
        empty = features.keypoints.new_zeros(0, 2)
        return PairMatches(empty, empty, torch.zeros(0, dtype=torch.long), 0)
    _, index = match_smnn_batched(
        features.descriptors[first],
        features.descriptors[second],
        th=ratio,
        mask1=features.mask[first],
        mask2=features.mask[second],
    )
    pair, i, j = index.unbind(1)
    points1 = features.keypoints[first[pair], i]
    points2 = features.keypoints[second[pair], j]
    return PairMatches(points1, points2, pair, len(first))
