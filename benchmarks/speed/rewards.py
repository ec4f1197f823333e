"""Benchmark 3: videos/s of the project's rewards against the two baselines a practitioner would write by hand.

All three analyse the same frame pairs (``frame_pairs`` of the reward's gaps) at the same analysis resolution
(long side ``max_side``, the reward's default) with at most ``num_features`` SIFT keypoints per frame, detecting each
frame once: (a) OpenCV SIFT + Lowe ratio test + ``findFundamentalMat(USAC_MAGSAC)``, looping over pairs; (b) Kornia's
``SIFTFeature`` one frame per call + ``match_smnn`` + ``RANSAC("fundamental")``. Each method's mean inlier ratio (a
reward's mean score where it reports none) is recorded too, to show they do comparable work on the rigid video.
"""

from __future__ import annotations

import cProfile
import dataclasses
import importlib
import pstats
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from kornia.feature import SIFTFeature, get_laf_center, match_smnn
from kornia.geometry.ransac import RANSAC

from benchmarks.common import interleaved_medians
from benchmarks.report import figure
from world_r1.geometry import (
    EpipolarEstimator,
    GeometrySettings,
    detect,
    frame_pairs,
    grayscale_resized,
    match_pairs,
)
from world_r1.rewards import WeightedReward
from world_r1.synthetic.scenes import rigid_video

#: (module, class) of every reward benchmarked when importable: other rewards are being written alongside.
REWARD_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("world_r1.rewards", "EpipolarReward"),
    ("world_r1.rewards.depth", "DepthConsistencyReward"),
    ("world_r1.rewards.trajectory", "FlowTrajectoryReward"),
    ("world_r1.rewards", "MotionReward"),
)
PROMPT = "Camera push in, then pan right. A textured room with a tiled floor."
#: the analysis every method runs: pairs a quarter of the clip apart (frames 4 apart of 16), 512 keypoints a frame
GEOMETRY = GeometrySettings(gaps=(0.25,), max_pairs=4, max_side=192, num_features=512)
#: the same with the detector's speed settings: no doubled first octave, no keypoint orientation
FAST_GEOMETRY = dataclasses.replace(GEOMETRY, upsample=False, upright=True)
FAST = "EpipolarReward, fast SIFT (upsample off, upright)"
#: the same with the corner detector (Harris corners, upright SIFT-style descriptors at one scale)
CORNER_GEOMETRY = dataclasses.replace(GEOMETRY, detector="corners")
CORNERS = "EpipolarReward, corner detector"
ALL_CORNERS = "all rewards, shared, corner detector"
#: the epipolar reward's speed goal (a share of OpenCV's) for settings that keep the photograph validation's separation
SEPARATING_GOAL = 0.25


def available_rewards(names: Sequence[str] | None = None) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    """Instantiate each candidate reward (or those in ``names``) with its defaults; returns (rewards, reasons the
    others were skipped)."""
    rewards, skipped = {}, {}
    for module_name, class_name in REWARD_CANDIDATES:
        if names is not None and class_name not in names:
            continue
        try:
            rewards[class_name] = getattr(importlib.import_module(module_name), class_name)()
        except Exception as error:  # a reward that is missing or cannot build offline is reported, not fatal
            skipped[class_name] = f"{type(error).__name__}: {error}"[:200]
    return rewards, skipped


def _gray_frames(video: torch.Tensor, frames: list[int], max_side: int) -> torch.Tensor:
    """Grayscale frames (N, 1, h, w) of one video (F, 3, H, W), resized exactly as the reward does."""
    return grayscale_resized(video[frames], max_side, GEOMETRY.upscale)[0]


def opencv_baseline(
    videos: torch.Tensor, pairs: torch.Tensor, max_side: int, num_features: int, ratio: float = 0.8
) -> float:
    """The OpenCV loop a practitioner writes; returns the mean inlier ratio of MAGSAC's fundamental matrices."""
    import cv2

    sift, matcher = cv2.SIFT_create(nfeatures=num_features), cv2.BFMatcher(cv2.NORM_L2)
    used = sorted(set(pairs.flatten().tolist()))
    inlier_ratios = []
    for video in videos:
        gray = (_gray_frames(video, used, max_side)[:, 0] * 255).round().to(torch.uint8).numpy()
        features = dict(zip(used, (sift.detectAndCompute(image, None) for image in gray), strict=True))
        for first, second in pairs.tolist():
            (kp1, d1), (kp2, d2) = features[first], features[second]
            if d1 is None or d2 is None or len(kp1) < 2 or len(kp2) < 2:
                continue
            good = [m for m, n in matcher.knnMatch(d1, d2, k=2) if m.distance < ratio * n.distance]
            if len(good) < 8:
                continue
            x1 = np.float32([kp1[m.queryIdx].pt for m in good])
            x2 = np.float32([kp2[m.trainIdx].pt for m in good])
            _, mask = cv2.findFundamentalMat(x1, x2, cv2.USAC_MAGSAC, 1.0, 0.999)
            if mask is not None:
                inlier_ratios.append(float(mask.mean()))
    return float(np.mean(inlier_ratios)) if inlier_ratios else 0.0


class KorniaNaive:
    """Kornia as the docs suggest it, one frame per ``SIFTFeature`` call (it refuses batches), one pair at a time."""

    def __init__(self, num_features: int, ratio: float = 0.9, ransac_px: float = 1.0, iters: int = 8) -> None:
        self.sift = SIFTFeature(num_features=num_features)
        self.ratio = ratio
        self.ransac = RANSAC("fundamental", inl_th=ransac_px, max_iter=iters, seed=0)

    @torch.no_grad()
    def __call__(self, videos: torch.Tensor, pairs: torch.Tensor, max_side: int) -> float:
        """Mean inlier ratio of the RANSAC fundamental matrices over all videos and pairs."""
        used = sorted(set(pairs.flatten().tolist()))
        inlier_ratios = []
        for video in videos:
            features = {}
            for frame, gray in zip(used, _gray_frames(video, used, max_side), strict=True):
                lafs, _, descriptors = self.sift(gray[None])
                features[frame] = (get_laf_center(lafs)[0], descriptors[0])
            for first, second in pairs.tolist():
                (x1, d1), (x2, d2) = features[first], features[second]
                _, index = match_smnn(d1, d2, self.ratio)
                if len(index) < 8:
                    continue
                _, inliers = self.ransac(x1[index[:, 0]], x2[index[:, 1]])
                inlier_ratios.append(float(inliers.float().mean()))
        return float(np.mean(inlier_ratios)) if inlier_ratios else 0.0


def analysis_settings(geometry: GeometrySettings = GEOMETRY) -> dict:
    """The analysis settings as a plain dict (what the baselines read and the results record)."""
    return dataclasses.asdict(geometry)


def stage_seconds(videos: torch.Tensor, settings: dict) -> dict[str, float]:
    """Wall time of each stage of the epipolar geometry core on ``videos``: where the reward's time goes (keys
    prefixed with the detector)."""
    pairs = frame_pairs(videos.shape[1], settings["gaps"], settings["max_pairs"])
    used = pairs.unique()
    slot = torch.full((videos.shape[1],), -1, dtype=torch.long)
    slot[used] = torch.arange(len(used))
    offsets = (torch.arange(len(videos)) * len(used)).repeat_interleave(len(pairs))
    first, second = slot[pairs[:, 0]].repeat(len(videos)) + offsets, slot[pairs[:, 1]].repeat(len(videos)) + offsets
    estimator = EpipolarEstimator(
        settings["ransac_px"], settings["inlier_px"], settings["ransac_iters"], settings["min_matches"]
    )
    name = settings["detector"]
    times: dict[str, float] = {}
    start = time.perf_counter()
    gray, _ = grayscale_resized(videos[:, used].flatten(0, 1), settings["max_side"], settings["upscale"])
    times[f"{name}: grayscale + resize"] = time.perf_counter() - start
    start = time.perf_counter()
    features = detect(gray, GeometrySettings(**settings))
    times[f"{name}: detection (batched)"] = time.perf_counter() - start
    start = time.perf_counter()
    matches = match_pairs(features, first, second, settings["ratio"])
    times[f"{name}: matching (batched)"] = time.perf_counter() - start
    start = time.perf_counter()
    estimator(matches)
    times[f"{name}: RANSAC F + Sampson"] = time.perf_counter() - start
    return times


def profile_top(fn: Callable[[], object], top: int = 10) -> list[dict]:
    """cProfile of one ``fn()`` call: the ``top`` functions by own time (tottime), with call counts."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler).sort_stats("tottime")
    rows = []
    for (path, line, name), (_, calls, tottime, cumtime, _) in list(stats.stats.items()):
        where = f"{path.split('site-packages/')[-1].split('/work/main/')[-1]}:{line}({name})"
        rows.append({"function": where[-70:], "calls": calls, "tottime_s": tottime, "cumtime_s": cumtime})
    return sorted(rows, key=lambda row: -row["tottime_s"])[:top]


def make_videos(batch: int, num_frames: int, height: int, width: int | None = None) -> torch.Tensor:
    """``batch`` rendered rigid scenes (B, F, 3, H, W) under a moving camera, one scene per sample."""
    return torch.stack([rigid_video(num_frames, height, width or height, seed=s).video for s in range(batch)])


def run(
    batch: int = 2,
    num_frames: int = 16,
    size: int = 256,
    repeats: int = 3,
    naive_repeats: int = 1,
    profile: bool = True,
    names: Sequence[str] | None = None,
) -> dict:
    """Videos/s of each importable reward and of both baselines on rendered rigid videos; ratios ours / baseline.

    Each reward is timed as training runs it, inside a :class:`WeightedReward` that analyses the batch once with
    :data:`GEOMETRY`; all rewards in one composite (``all rewards, shared``) is what a training step pays when they
    are combined: one analysis, every term. ``names`` restricts the rewards (class names) benchmarked.
    """
    rewards, skipped = available_rewards(names)
    settings = analysis_settings()
    videos = make_videos(batch, num_frames, size)
    prompts: Sequence[str] = [PROMPT] * batch
    pairs = frame_pairs(num_frames, settings["gaps"], settings["max_pairs"])
    max_side, num_features = settings["max_side"], settings["num_features"]
    naive = KorniaNaive(num_features, settings["ratio"], settings["ransac_px"], settings["ransac_iters"])
    quality: dict[str, float] = {}

    def timed(name: str, fn: Callable[[torch.Tensor], float]) -> Callable[[], None]:
        return lambda: quality.__setitem__(name, fn(videos.clone()))

    functions = {name: timed(name, _inliers_of(name, reward, prompts)) for name, reward in rewards.items()}
    if "EpipolarReward" in rewards:
        epipolar = rewards["EpipolarReward"]
        functions[FAST] = timed(FAST, _inliers_of("EpipolarReward", epipolar, prompts, FAST_GEOMETRY))
        functions[CORNERS] = timed(CORNERS, _inliers_of("EpipolarReward", epipolar, prompts, CORNER_GEOMETRY))
    if len(rewards) > 1:
        functions["all rewards, shared"] = timed("all rewards, shared", _all_of(rewards, prompts))
        functions[ALL_CORNERS] = timed(ALL_CORNERS, _all_of(rewards, prompts, CORNER_GEOMETRY))
    functions["opencv"] = timed("opencv", lambda v: opencv_baseline(v, pairs, max_side, num_features))
    seconds = interleaved_medians(functions, repeats=repeats)
    naive_fn = {"kornia_naive": timed("kornia_naive", lambda v: naive(v, pairs, max_side))}
    seconds |= interleaved_medians(naive_fn, repeats=naive_repeats, warmup=0)
    figures = {}
    for name in [*rewards, FAST, CORNERS, "all rewards, shared", ALL_CORNERS]:
        if name not in seconds:
            continue
        ratio = seconds["opencv"] / seconds[name]
        goal, met = ("> 1 (faster)", ratio > 1)
        if name == CORNERS:
            goal, met = f">= {SEPARATING_GOAL}", ratio >= SEPARATING_GOAL
        figures[f"{name}: videos/s"] = figure(batch / seconds[name], "videos/s")
        figures[f"{name}: speed vs OpenCV"] = figure(ratio, "x", goal, met)
        figures[f"{name}: speed vs naive Kornia"] = figure(seconds["kornia_naive"] / seconds[name], "x")
    figures["OpenCV baseline: videos/s"] = figure(batch / seconds["opencv"], "videos/s")
    figures["naive Kornia baseline: videos/s"] = figure(batch / seconds["kornia_naive"], "videos/s")
    result = {
        "config": {
            "batch": batch,
            "num_frames": num_frames,
            "size": size,
            "settings": settings,
            "pairs": pairs.tolist(),
            "repeats": repeats,
        },
        "skipped_rewards": skipped,
        "seconds": seconds,
        "mean_inlier_ratio_or_score": quality,
        "figures": figures,
    }
    if profile and "EpipolarReward" in rewards:
        result["stages_s"] = stage_seconds(videos.clone(), settings)
        result["stages_s"] |= stage_seconds(videos.clone(), analysis_settings(CORNER_GEOMETRY))
        epipolar = WeightedReward({"epipolar": rewards["EpipolarReward"]}, geometry=GEOMETRY)
        result["profile"] = profile_top(lambda: epipolar(videos.clone(), prompts))
    return result


def _inliers_of(
    name: str, reward: torch.nn.Module, prompts: Sequence[str], geometry: GeometrySettings = GEOMETRY
) -> Callable[[torch.Tensor], float]:
    """Score with ``reward`` alone (its own analysis of the batch under ``geometry``); its mean inlier ratio where it
    reports one, else its mean score."""
    composite = WeightedReward({name: reward}, geometry=geometry)

    def call(videos: torch.Tensor) -> float:
        out = composite(videos, prompts)
        return float(out.get(f"{name}/inlier_ratio", out[name]).float().mean())

    return call


def _all_of(
    rewards: dict[str, torch.nn.Module], prompts: Sequence[str], geometry: GeometrySettings = GEOMETRY
) -> Callable[[torch.Tensor], float]:
    """Score one batch with every reward in one composite (one analysis under ``geometry``: what a training step
    pays); returns the mean of their scores."""
    composite = WeightedReward(dict(rewards), geometry=geometry)

    def call(videos: torch.Tensor) -> float:
        out = composite(videos, prompts)
        return float(torch.stack([out[name].float().mean() for name in rewards]).mean())

    return call
