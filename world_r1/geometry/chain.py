"""The camera path of a video chained from consecutive keyframes, each step's motion chosen by model selection.

Reading every keyframe against frame 0 (:func:`~world_r1.geometry.path.estimate_path`) loses the matches as the view
drifts away (real clips kept 1-3 of 8 anchors past frame 30) and reads each pair through the general model, which
finds turning in travel. Here the keyframes ``0 = k_0 < k_1 < ... < k_A = F - 1`` are paired in sequence (the
analysis's path pairs with ``GeometrySettings.path_pairs = "consecutive"``), so each step spans a short baseline that
matches well to the end of the clip; each step's motion is the simplest of still / turn / travel / both that explains
its matches (:func:`~world_r1.geometry.motion_models.select_motion`), so a push-in reads no turning and a pan no
travel; and the steps are composed.

Travel has no scale in a single pair. A step's length is carried from the step before it through the keyframe they
share: frame ``k_i``'s keypoints are detected once, so the depths the two steps triangulate for the same keypoints
differ by the ratio of their baselines. Where no such link exists (a turning step in between, too few shared points)
the step keeps the length of the last travelling one: the camera keeps its speed. The unit is the median depth of the
first travelling step's points in its first frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world_r1.geometry.motion_models import PairMotion, select_motion
from world_r1.geometry.path import CameraPath, estimate_path, shared_depth_ratio
from world_r1.geometry.pose import triangulate
from world_r1.geometry.video import VideoGeometry

#: shared keypoints two steps need to carry the scale from one to the next
MIN_SHARED = 5


@dataclass
class _Step:
    """One chained step ``a -> b``: its chosen motion and, where it travels, the pixels and depths its points have in
    both frames (unit baseline)."""

    motion: PairMotion | None
    points_a: torch.Tensor | None = None
    depth_a: torch.Tensor | None = None
    points_b: torch.Tensor | None = None
    depth_b: torch.Tensor | None = None


def _triangulated(step: PairMotion, points_a: torch.Tensor, points_b: torch.Tensor, intrinsics: torch.Tensor):
    """Pixels and depths in both frames of the inliers of a travelling step, in front of both cameras (None if fewer
    than :data:`MIN_SHARED`)."""
    inliers = step.inliers
    a, b = points_a.double()[inliers], points_b.double()[inliers]
    if len(a) < MIN_SHARED:
        return None
    world_a = triangulate(intrinsics.double(), step.rotation, step.translation, a, b)
    world_b = world_a @ step.rotation.T + step.translation
    keep = torch.isfinite(world_a).all(1) & (world_a[:, 2] > 1e-9) & (world_b[:, 2] > 1e-9)
    if int(keep.sum()) < MIN_SHARED:
        return None
    return a[keep], world_a[keep, 2], b[keep], world_b[keep, 2]


def _shared_ratio(previous: _Step, current: _Step) -> float | None:
    """The current step's baseline in the previous step's unit, read through the keypoints the two share in their
    common frame (:func:`~world_r1.geometry.path.shared_depth_ratio`; None without :data:`MIN_SHARED` of them)."""
    if previous.points_b is None or current.points_a is None:
        return None
    ratio = shared_depth_ratio(current.points_a, current.depth_a, previous.points_b, previous.depth_b, MIN_SHARED)
    return None if ratio is None else float(ratio)


def estimate_chained_path(
    analysis: VideoGeometry,
    video: int,
    intrinsics: torch.Tensor,
    threshold_px: float | None = None,
    seed: int = 0,
) -> CameraPath:
    """The path of video ``video`` from the analysis's consecutive keyframe pairs (module docstring).

    Args:
        analysis: the batch's shared analysis, made with ``GeometrySettings(anchors=A, path_pairs="consecutive")``.
        video: which video of the batch.
        intrinsics: (3, 3) assumed intrinsics at the analysis size.
        threshold_px: inlier threshold of the model fits (analysis pixels; default the analysis's RANSAC one).
        seed: seeds the fits' sampling, so a video always reads the same path.
    """
    chained = analysis.anchored
    if chained is None or chained.settings.path_pairs != "consecutive":
        raise ValueError(
            "the chained path reads consecutive keyframe pairs: make the analysis with GeometrySettings(anchors=8, "
            "path_pairs='consecutive')."
        )
    threshold = chained.settings.ransac_px if threshold_px is None else threshold_px
    generator = torch.Generator().manual_seed(seed)
    count = len(chained.pairs)
    k = intrinsics.double().cpu()
    steps: list[_Step] = []
    for p in range(count):
        key = video * count + p
        points_a, points_b = (m.double().cpu() for m in chained.matches.of_pair(key))
        fundamental = chained.geometry.fundamental[key] if bool(chained.geometry.valid[key]) else None
        motion = select_motion(points_a, points_b, fundamental, k, threshold, generator=generator)
        step = _Step(motion)
        if motion is not None and motion.kind in ("translation", "general"):
            found = _triangulated(motion, points_a, points_b, k)
            if found is not None:
                step.points_a, step.depth_a, step.points_b, step.depth_b = found
        steps.append(step)
    return _compose(steps, chained.pairs[:, 1].cpu(), float(k[0, 0]))


def _compose(steps: list[_Step], frames: torch.Tensor, focal: float) -> CameraPath:
    """Chain the steps' motions into world-to-camera poses of the keyframes relative to frame 0 (module docstring)."""
    count = len(steps)
    rotations = torch.eye(3, dtype=torch.float64).repeat(count, 1, 1)
    centres = torch.zeros(count, 3, dtype=torch.float64)
    known = torch.zeros(count, dtype=torch.bool)
    rotation_only = torch.zeros(count, dtype=torch.bool)
    pose_r, pose_t = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    baseline, unit, last_travel = 1.0, None, None  # current step length; depth unit; last travelling step
    previous_motion: PairMotion | None = None
    for index, step in enumerate(steps):
        motion = step.motion if step.motion is not None else previous_motion  # a lost step: the camera keeps going
        if motion is not None:
            travels = motion.kind in ("translation", "general")
            if travels:
                follows = last_travel is not None and index > 0 and steps[index - 1] is last_travel
                ratio = _shared_ratio(last_travel, step) if follows else None
                if ratio is not None:  # else the camera keeps the speed of the last travelling step
                    baseline *= ratio
                if unit is None and step.depth_a is not None:
                    unit = float(step.depth_a.median()) * baseline
                if step.depth_a is not None:
                    last_travel = step
            translation = motion.translation * baseline if travels else torch.zeros(3, dtype=torch.float64)
            pose_r, pose_t = motion.rotation @ pose_r, motion.rotation @ pose_t + translation
            rotation_only[index] = not travels
            known[index] = step.motion is not None
            previous_motion = motion
        rotations[index] = pose_r
        centres[index] = -(pose_r.T @ pose_t)
    if unit:
        centres = centres / unit
    return CameraPath(frames, rotations, centres, known, rotation_only, focal, chained=True)


#: the path estimators :func:`path_of` offers, and the keyframe pairs each reads (``GeometrySettings.path_pairs``)
PATH_ESTIMATORS: dict[str, str] = {"chained": "consecutive", "anchored": "first"}


def path_of(estimator: str, analysis: VideoGeometry, video: int, intrinsics: torch.Tensor) -> CameraPath:
    """The path of video ``video`` by ``estimator`` (:data:`PATH_ESTIMATORS`): ``chained``
    (:func:`estimate_chained_path`) or ``anchored`` (:func:`~world_r1.geometry.path.estimate_path`)."""
    if estimator == "chained":
        return estimate_chained_path(analysis, video, intrinsics)
    if estimator == "anchored":
        return estimate_path(analysis, video, intrinsics)
    raise ValueError(f"unknown path estimator {estimator!r}; choose one of {sorted(PATH_ESTIMATORS)}.")
