"""World-R1's S_traj exactly as its release defines it, on the camera path estimated from the video's keyframes."""

from __future__ import annotations

import torch

from world_r1.camera.grammar import CameraPlan
from world_r1.geometry import VideoGeometry
from world_r1.rewards.path_scores import PathPair, release_trajectory_score
from world_r1.rewards.trajectory.estimated import EstimatedPathReward


class ReleaseTrajectoryReward(EstimatedPathReward):
    """Per video, ``score`` in [0, 1]: :func:`~world_r1.rewards.path_scores.release_trajectory_score` of the camera
    path relative to frame 0, chained from consecutive keyframes of the analysis (``geometry.anchors`` with
    ``geometry.path_pairs: consecutive``, each step read as still, turn, travel or both by model selection,
    :mod:`world_r1.geometry.chain`; or ``path_estimator: anchored``, each keyframe against frame 0), aligned onto the
    intended path by the release's Umeyama similarity (RANSAC from 6 poses), and scored by travel (cosine, length
    ratio, mean error) and turning (mean and last geodesic error, total turning), weighted by whether the intended
    path travels and turns. A prompt without camera words scores 0, as released.

    It is scored on frame 0 and the anchors (9 poses with 8 anchors, not the release's 81: a reconstruction of every
    frame would cost 10x the analysis), with the release's error tolerance of 81 frames (the target's length over
    ``frames - 1`` steps).

    Raw terms: ``translation`` and ``rotation`` (T and Q), ``direction`` (cos), ``length_ratio``, ``path_error``
    (mean distance of matching centres, in the target's units), ``turning_deg`` (the estimate's total turning),
    ``rotation_error_deg``, ``final_rotation_error_deg`` and ``known``.
    """

    keys = (
        "translation",
        "rotation",
        "direction",
        "length_ratio",
        "path_error",
        "turning_deg",
        "rotation_error_deg",
        "final_rotation_error_deg",
        "known",
    )
    default_estimator = "chained"

    def score_video(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, plan: CameraPlan
    ) -> dict[str, float]:
        if not plan.has_camera:  # the release: a prompt without camera words scores 0
            return {}
        return super().score_video(analysis, b, poses, intrinsics, plan)

    def compare(self, paths: PathPair, steps: int) -> dict[str, float]:
        return release_trajectory_score(
            _camera_to_world(paths.estimated_rotations, paths.estimated_centres),
            _camera_to_world(paths.intended_rotations, paths.intended_centres),
            steps=steps,  # the release's tolerance: the target's length per step over all frames
        )


def _camera_to_world(rotations: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Camera-to-world poses (N, 4, 4) of cameras with ``X_k = R X_0 + t`` rotations (N, 3, 3) and centres (N, 3)."""
    poses = torch.eye(4, dtype=torch.float64).repeat(len(centres), 1, 1)
    poses[:, :3, :3] = rotations.double().transpose(1, 2)
    poses[:, :3, 3] = centres.double()
    return poses
