"""One call from a batch of videos to per-pair two-view geometry: what every reward and metric starts from."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world_r1.geometry.epipolar import EpipolarEstimator, PairGeometry
from world_r1.geometry.frames import frame_pairs, grayscale_resized
from world_r1.geometry.matching import PairMatches, SIFTDetector, match_pairs


@dataclass
class VideoGeometry:
    """Geometry of B videos with P pairs each: ``pairs`` (P, 2) frame indices, ``geometry`` fields (B * P,) ordered
    video by video, ``matches`` with pair index ``b * P + p``, and ``scale`` mapping analysis pixels to input pixels."""

    pairs: torch.Tensor
    geometry: PairGeometry
    matches: PairMatches
    scale: float
    size: tuple[int, int]

    def per_video(self, values: torch.Tensor) -> torch.Tensor:
        """(B * P,) -> (B, P)."""
        return values.reshape(-1, max(len(self.pairs), 1))


def analyse_videos(
    videos: torch.Tensor,
    detector: SIFTDetector,
    estimator: EpipolarEstimator,
    gaps: tuple[int, ...] = (4,),
    max_pairs: int = 4,
    max_side: int = 192,
    ratio: float = 0.9,
) -> VideoGeometry:
    """Detect features once on every frame used by a pair (all videos in one batch), match all pairs in one batched
    call, and estimate each pair's geometry. ``videos`` (B, F, 3, H, W) in [0, 1]."""
    batch, num_frames = videos.shape[:2]
    pairs = frame_pairs(num_frames, gaps, max_pairs).to(videos.device)
    used = pairs.unique()
    gray, scale = grayscale_resized(videos[:, used].flatten(0, 1), max_side)
    features = detector(gray)
    slot = torch.full((num_frames,), -1, dtype=torch.long, device=videos.device)
    slot[used] = torch.arange(len(used), device=videos.device)
    offsets = (torch.arange(batch, device=videos.device) * len(used)).repeat_interleave(len(pairs))
    first = slot[pairs[:, 0]].repeat(batch) + offsets
    second = slot[pairs[:, 1]].repeat(batch) + offsets
    matches = match_pairs(features, first, second, ratio)
    return VideoGeometry(pairs, estimator(matches), matches, scale, tuple(gray.shape[-2:]))
