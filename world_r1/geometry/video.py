"""One call from a batch of videos to per-pair two-view geometry: what every reward and metric starts from.

Feature detection is the dominant cost of the 3D rewards, so a batch is analysed once and the analysis is handed to
every term that reads it (:class:`~world_r1.rewards.WeightedReward`, :func:`~world_r1.metrics.score_terms`): one
:class:`GeometrySettings` object configures them all, and nothing is cached behind the caller's back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, get_args

import torch

from world_r1.geometry.corners import CornerDetector
from world_r1.geometry.epipolar import EpipolarEstimator, PairGeometry
from world_r1.geometry.frames import anchor_pairs, frame_pairs, grayscale_resized
from world_r1.geometry.matching import Features, PairMatches, SIFTDetector, match_pairs
from world_r1.settings import check_choice

#: the feature detectors an analysis can use (``GeometrySettings.detector``)
Detector = Literal["sift", "corners"]
DETECTORS: tuple[str, ...] = get_args(Detector)
#: how the keyframes of a camera path are paired (``GeometrySettings.path_pairs``)
PathPairs = Literal["first", "consecutive"]


@dataclass(frozen=True)
class GeometrySettings:
    """Everything that determines a :class:`VideoGeometry`.

    Args:
        gaps: how far apart the frames of a pair are, as fractions of the clip (frame ``i`` with frame
            ``i + round(g * (F - 1))``), each in (0, 1]: one setting serves 9-frame test clips and 81-frame Wan videos.
        max_pairs: pairs per gap, spread evenly over the video.
        max_side: frames are analysed with their long side resized to at most this many pixels (to exactly this many
            with ``upscale``).
        upscale: enlarge smaller frames to ``max_side`` too, so every pixel threshold (``ransac_px``, ``inlier_px``,
            the terms' parallax gates) is the same share of the frame whatever the video's size.
        detector: ``"sift"``, Kornia's scale-space SIFT (scale- and rotation-invariant), or ``"corners"``,
            :class:`~world_r1.geometry.corners.CornerDetector` (Harris corners with upright SIFT-style descriptors at
            one scale: about 10x cheaper, for pairs that differ by tens of percent in scale at most and do not roll;
            not scale-covariant, so a path from frame 0 through a zoom reads as travel).
        num_features: keypoints per frame.
        ratio: Lowe ratio of the mutual nearest-neighbour matching.
        ransac_px: RANSAC inlier threshold (analysis pixels).
        inlier_px: Sampson distance (analysis pixels) under which a match counts as consistent.
        ransac_iters: RANSAC batches of minimal samples (each batch is Kornia's ``"auto"`` size).
        min_matches: pairs with fewer matches are degenerate.
        upsample: SIFT detects on frames doubled in size, as SIFT does by default (False: on the frames themselves,
            about 3x faster, fewer keypoints on small frames). Not read by ``"corners"``.
        upright: SIFT describes keypoints without orientation (faster; for cameras that do not roll in the image
            plane). ``"corners"`` is always upright.
        anchors: this many keyframes spread over the clip after frame 0 (0: none), paired as ``path_pairs`` says, for
            the terms that read the camera path (``ReleaseTrajectoryReward``, ``PathShapeReward``); they form the
            separate :attr:`VideoGeometry.anchored` analysis, so the other terms' pairs stay as ``gaps`` makes them.
        path_pairs: how those keyframes are paired: ``"first"``, each with frame 0 (the anchored path of
            :func:`~world_r1.geometry.path.estimate_path`), or ``"consecutive"``, each with the keyframe before it
            (the chained path of :func:`~world_r1.geometry.chain.estimate_chained_path`: short baselines that keep
            matching to the end of the clip).
    """

    gaps: tuple[float, ...] = (0.25, 0.5)
    max_pairs: int = 4
    max_side: int = 192
    upscale: bool = False
    detector: Detector = "sift"
    num_features: int = 256
    ratio: float = 0.9
    ransac_px: float = 1.0
    inlier_px: float = 0.5
    ransac_iters: int = 8
    min_matches: int = 16
    upsample: bool = True
    upright: bool = False
    anchors: int = 0
    path_pairs: PathPairs = "first"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gaps", tuple(float(g) for g in self.gaps))
        if not self.gaps or not all(0.0 < g <= 1.0 for g in self.gaps):
            raise ValueError(
                f"geometry.gaps are fractions of the clip in (0, 1] (0.5: frames half the video apart), got "
                f"{list(self.gaps)}."
            )
        check_choice("geometry.detector", self.detector, Detector)
        check_choice("geometry.path_pairs", self.path_pairs, PathPairs)
        if self.anchors < 0:
            raise ValueError(
                f"geometry.anchors must be >= 0 (0: no pairs with frame 0 for a path), got {self.anchors}."
            )
        if min(self.max_pairs, self.max_side, self.num_features, self.ransac_iters, self.min_matches) < 1:
            raise ValueError("geometry: max_pairs, max_side, num_features, ransac_iters and min_matches must be >= 1.")
        if self.ransac_px <= 0 or self.inlier_px <= 0 or not 0.0 < self.ratio <= 1.0:
            raise ValueError("geometry: ransac_px and inlier_px must be > 0 and ratio in (0, 1].")


@dataclass
class VideoGeometry:
    """Geometry of B videos with P pairs each: ``pairs`` (P, 2) frame indices, ``geometry`` fields (B * P,) ordered
    video by video, ``matches`` with pair index ``b * P + p``, ``scale`` mapping analysis pixels to input pixels,
    ``size`` the analysis frame size (H, W), and the ``settings`` it was made with. ``anchored`` is the same for the
    pairs of frame 0 with ``settings.anchors`` frames (:func:`~world_r1.geometry.frames.anchor_pairs`), from the same
    features; None without anchors."""

    pairs: torch.Tensor
    geometry: PairGeometry
    matches: PairMatches
    scale: float
    size: tuple[int, int]
    settings: GeometrySettings = field(default_factory=GeometrySettings)
    anchored: VideoGeometry | None = None

    @property
    def num_videos(self) -> int:
        return len(self.geometry.valid) // max(len(self.pairs), 1)

    def per_video(self, values: torch.Tensor) -> torch.Tensor:
        """(B * P,) -> (B, P)."""
        return values.reshape(-1, max(len(self.pairs), 1))


@lru_cache(maxsize=8)
def _detector(detector: str, num_features: int, upsample: bool, upright: bool, device: torch.device) -> torch.nn.Module:
    """One detector per setting and device: building Kornia's scale-space modules costs more than a small batch."""
    if detector == "corners":
        return CornerDetector(num_features).to(device)
    return SIFTDetector(num_features, upsample, upright).to(device)


def detect(gray: torch.Tensor, settings: GeometrySettings) -> Features:
    """Keypoints and descriptors of grey frames (N, 1, H, W) with the detector ``settings`` choose."""
    build = _detector(settings.detector, settings.num_features, settings.upsample, settings.upright, gray.device)
    return build(gray)


def analyse(videos: torch.Tensor, settings: GeometrySettings | None = None) -> VideoGeometry:
    """Detect features once on every frame some pair uses (all videos in one batch), match all pairs in one batched
    call, and estimate each pair's geometry; the same for the anchor pairs, from the same features, where
    ``settings.anchors`` asks for them. ``videos`` (B, F, 3, H, W) in [0, 1]; with F < 2 there are no pairs."""
    settings = settings or GeometrySettings()
    videos = videos.detach().float().clamp(0, 1)
    batch, num_frames = videos.shape[:2]
    pairs = frame_pairs(num_frames, settings.gaps, settings.max_pairs).to(videos.device)
    anchored = anchor_pairs(num_frames, settings.anchors, settings.path_pairs == "consecutive").to(videos.device)
    estimator = EpipolarEstimator(settings.ransac_px, settings.inlier_px, settings.ransac_iters, settings.min_matches)
    used = torch.cat([pairs.flatten(), anchored.flatten()]).unique()
    if len(used) == 0:  # one-frame videos: nothing to compare
        empty = videos.new_zeros(0, 2)
        matches = PairMatches(empty, empty, torch.zeros(0, dtype=torch.long, device=videos.device), 0)
        return VideoGeometry(pairs, estimator(matches), matches, 1.0, tuple(videos.shape[-2:]), settings)
    gray, scale = grayscale_resized(videos[:, used].flatten(0, 1), settings.max_side, settings.upscale)
    features = detect(gray, settings)
    slot = torch.full((num_frames,), -1, dtype=torch.long, device=videos.device)
    slot[used] = torch.arange(len(used), device=videos.device)
    size = tuple(gray.shape[-2:])

    def of(chosen: torch.Tensor) -> VideoGeometry:
        offsets = (torch.arange(batch, device=videos.device) * len(used)).repeat_interleave(len(chosen))
        first = slot[chosen[:, 0]].repeat(batch) + offsets
        second = slot[chosen[:, 1]].repeat(batch) + offsets
        matches = match_pairs(features, first, second, settings.ratio)
        return VideoGeometry(chosen, estimator(matches), matches, scale, size, settings)

    analysis = of(pairs)
    if len(anchored):
        analysis.anchored = of(anchored)
    return analysis
