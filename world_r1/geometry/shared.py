"""One analysis per batch of videos, shared by every reward and metric that asks with the same settings.

Feature detection is the dominant cost of the 3D rewards. When several terms (epipolar, depth, motion) score the same
batch, :func:`shared_analysis` detects and matches once: the result is cached against the identity of the input
tensor (a weak reference, so the cache never keeps a batch alive) and its in-place version counter (a content
fingerprint for inference-mode tensors, which have none), so a tensor that was modified, freed, or replaced by another
one at the same address is never served a stale result.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache

import torch

from world_r1.geometry.epipolar import EpipolarEstimator
from world_r1.geometry.matching import SIFTDetector
from world_r1.geometry.video import VideoGeometry, analyse_videos


@dataclass(frozen=True)
class GeometrySettings:
    """Everything that determines a :class:`VideoGeometry`; equal settings share one analysis.

    Args:
        gaps: frame gaps of the pairs compared.
        max_pairs: pairs per gap, spread over the video.
        max_side: frames are analysed with their long side resized to at most this many pixels.
        num_features: SIFT keypoints per frame.
        ratio: Lowe ratio of the mutual nearest-neighbour matching.
        ransac_px: RANSAC inlier threshold (analysis pixels).
        inlier_px: Sampson distance (analysis pixels) under which a match counts as consistent.
        ransac_iters: RANSAC batches of minimal samples (each batch is Kornia's ``"auto"`` size).
        min_matches: pairs with fewer matches are degenerate.
    """

    gaps: tuple[int, ...] = (4,)
    max_pairs: int = 4
    max_side: int = 192
    num_features: int = 256
    ratio: float = 0.9
    ransac_px: float = 1.0
    inlier_px: float = 0.5
    ransac_iters: int = 8
    min_matches: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "gaps", tuple(int(g) for g in self.gaps))


@lru_cache(maxsize=8)
def _detector(num_features: int, device: torch.device) -> SIFTDetector:
    return SIFTDetector(num_features).to(device)


def _state(videos: torch.Tensor) -> tuple[str, float]:
    """What changes when ``videos`` is modified in place: its version counter, or for inference-mode tensors
    (Lightning's validation and test loops), which have none, a sum over 4096 evenly strided elements."""
    if not videos.is_inference():
        return ("version", float(videos._version))
    flat = videos.detach().reshape(-1)
    return ("fingerprint", float(flat[:: max(1, flat.numel() // 4096)].double().sum()))


class _Entry:
    def __init__(self, videos: torch.Tensor, settings: GeometrySettings, result: VideoGeometry) -> None:
        self.ref = weakref.ref(videos)
        self.state = _state(videos)
        self.settings = settings
        self.result = result

    def matches(self, videos: torch.Tensor, settings: GeometrySettings) -> bool:
        return self.ref() is videos and self.settings == settings and self.state == _state(videos)


_CACHE: list[_Entry] = []
_CACHE_SIZE = 4


def shared_analysis(videos: torch.Tensor, settings: GeometrySettings, cache: bool = True) -> VideoGeometry:
    """:func:`analyse_videos` of ``videos`` (B, F, 3, H, W) in [0, 1] with ``settings``, computed once per tensor.

    The same tensor object (unmodified) with equal settings returns the cached :class:`VideoGeometry`; anything else
    is analysed afresh. ``cache=False`` always recomputes and stores nothing. Videos need F >= 2 for any pair;
    with fewer the result has no pairs.
    """
    if cache:
        for entry in _CACHE:
            if entry.matches(videos, settings):
                return entry.result
    estimator = EpipolarEstimator(settings.ransac_px, settings.inlier_px, settings.ransac_iters, settings.min_matches)
    result = analyse_videos(
        videos.float().clamp(0, 1),
        _detector(settings.num_features, videos.device),
        estimator,
        settings.gaps,
        settings.max_pairs,
        settings.max_side,
        settings.ratio,
    )
    if cache:
        _CACHE[:] = [e for e in _CACHE if e.ref() is not None][-(_CACHE_SIZE - 1) :]
        _CACHE.append(_Entry(videos, settings, result))
    return result


def clear_shared_analysis() -> None:
    """Drop every cached analysis."""
    _CACHE.clear()
