"""The image motion of the video against the motion the intended camera path gives the same pixels: right way, and
as far."""

from __future__ import annotations

import math

import torch

from world_r1.camera import DefaultScene, MotionScale, flow_at
from world_r1.camera.grammar import CameraPlan
from world_r1.geometry import VideoGeometry
from world_r1.rewards.trajectory.base import CameraTrajectoryReward


class FlowTrajectoryReward(CameraTrajectoryReward):
    """Per video, ``score`` in [0, 1]: the mean over the analysis' frame pairs ``(i, j)`` of a per-pair agreement.

    With ``d`` the displacements of the pair's rigid matches (Sampson distance within ``ransac_px`` of its fundamental
    matrix; all matches where it has none) and ``f`` the displacements the intended path (and lens, where it zooms)
    gives the same pixels over ``scene`` (ground plane and backdrop, :mod:`world_r1.camera.flow`: the flow that warps
    the noise), ``size = exp(-|ln((|d| + c) / (|f| + c))| / ln(size_tolerance))`` with medians of the lengths and
    ``c = motion_slack_px`` (a camera twice too fast or too slow scores exp(-1)), and, where the intended motion is
    visible (``median |f| > c``), ``direction = max(0, sum(d . f) / sum(|d| |f|))`` (the opposite pan scores 0). The
    pair scores ``size * direction``; a static camera expected (``"Camera fixed."`` or no camera sentence) is scored
    on its size alone, so a still camera earns it. A camera that moves the right way but too little (or freezes)
    loses the size part, as World-R1's path-length term does.

    A pair with too few matches, or an intended path that turns the camera away from every point, scores 0 and sets
    ``degenerate``. Raw terms: ``direction`` and ``size`` (the pairs' factors of the score: direction 1 where none is
    expected, both 0 on a degenerate pair) and ``motion_ratio`` (geometric mean over the measured pairs of
    ``(|d| + c) / (|f| + c)``: 1 is the intended amount of motion, below 1 too little; 0 when no pair was measured).
    """

    keys = ("direction", "size", "motion_ratio")

    def __init__(
        self,
        fov_deg: float = 60.0,
        motion: MotionScale | None = None,
        scene: DefaultScene | None = None,
        size_tolerance: float = 2.0,
        motion_slack_px: float = 1.0,
    ) -> None:
        """
        Args:
            fov_deg: assumed horizontal field of view of the videos (the same as ``camera.fov_deg`` of the module).
            motion: how far one motion of the plan goes (``camera.motion`` of the module); defaults to MotionScale().
            scene: the assumed scene the intended path is projected over (``camera.scene`` of the module).
            size_tolerance: the factor of too much or too little motion that scores exp(-1).
            motion_slack_px: pixels added to both lengths, so sub-pixel jitter of a still camera is free.
        """
        super().__init__(fov_deg, motion)
        if size_tolerance <= 1.0 or motion_slack_px <= 0:
            raise ValueError(
                "FlowTrajectoryReward needs size_tolerance > 1 (e.g. 2.0) and motion_slack_px > 0 (e.g. 1.0)."
            )
        self.scene = scene or DefaultScene()
        self.size_tolerance, self.motion_slack_px = size_tolerance, motion_slack_px

    def score_video(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, plan: CameraPlan
    ) -> dict[str, float]:
        num_pairs, geometry = len(analysis.pairs), analysis.geometry
        scores, directions, sizes, log_ratios, parallaxes = [], [], [], [], []
        degenerate = num_pairs == 0
        for p, (i, j) in enumerate(analysis.pairs.tolist()):
            k = b * num_pairs + p
            start, end = analysis.matches.of_pair(k)
            parallaxes.append(float(geometry.parallax_px[k]) if len(start) else 0.0)
            target, in_front = flow_at(start, poses[i], poses[j], intrinsics[i], self.scene, intrinsics[j])
            # too few matches, or an intended path that turns the camera away from every point: nothing to compare
            if len(start) < analysis.settings.min_matches or not bool(in_front.any()):
                degenerate = True
                scores.append(0.0)
                directions.append(0.0)
                sizes.append(0.0)
                continue
            if bool(geometry.valid[k]):
                error = geometry.match_error_px[analysis.matches.pair == k]  # the estimator's, match for match
                rigid = (error < analysis.settings.ransac_px) & in_front
                if int(rigid.sum()) >= 8:
                    in_front = rigid
            measured, expected = (end - start)[in_front].float(), (target - start)[in_front]
            length, intended = float(measured.norm(dim=1).median()), float(expected.norm(dim=1).median())
            log_ratio = math.log((length + self.motion_slack_px) / (intended + self.motion_slack_px))
            size = math.exp(-abs(log_ratio) / math.log(self.size_tolerance))
            direction = 1.0  # a still camera, or motion too small to see: no direction to get wrong
            if not plan.is_static and intended > self.motion_slack_px:
                cosine = (measured * expected).sum(1) / (measured.norm(dim=1) * expected.norm(dim=1)).clamp_min(1e-9)
                direction = max(0.0, float(cosine.median()))
            scores.append(size * direction)
            directions.append(direction)
            sizes.append(size)
            log_ratios.append(log_ratio)
        return {
            "score": _mean(scores),
            "direction": _mean(directions),
            "size": _mean(sizes),
            "motion_ratio": math.exp(_mean(log_ratios)) if log_ratios else 0.0,
            "parallax_px": _mean(parallaxes),
            "degenerate": float(degenerate),
        }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
