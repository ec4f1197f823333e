"""Trajectory alignment (World-R1's S_traj): does the camera in the video move the way the prompt says?

For frame pairs ``(i, j)`` of each video, the geometry core recovers the relative camera rotation and the direction of
translation (SIFT matches, robust fundamental matrix, essential matrix with intrinsics from an assumed field of view);
the intended relative motion comes from the prompt's camera plan (:mod:`world_r1.camera`) sampled at the video's
frame count. Both follow ``X_j = R X_i + t`` in OpenCV camera axes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch

from world_r1.camera import MotionScale, camera_trajectory, plan_for_prompt, relative_motion
from world_r1.geometry import GeometrySettings, VideoGeometry, intrinsics_from_fov, relative_pose, shared_analysis
from world_r1.geometry.pose import rotation_angle_deg
from world_r1.rewards.base import Reward, check_videos

log = logging.getLogger(__name__)


class TrajectoryReward(Reward):
    """Per video, ``score`` in [0, 1] is the mean over frame pairs of a per-pair agreement:

    * camera motion expected (the prompt's plan moves): ``rot = exp(-e_R / (rotation_tolerance_deg + 0.5 * |R_gt|))``
      with ``e_R`` the geodesic angle between estimated and intended relative rotations (so a correct pan beats no
      pan, which beats the opposite pan, whatever the intended speed); where the intended translation is non-zero,
      ``trans = exp(-e_t / translation_tolerance_deg)`` with ``e_t`` the angle between the estimated and intended
      translation directions, and the pair scores ``rot * trans`` (both must agree: the opposite dolly has the right
      rotation), else ``rot``. A pair whose median match displacement is below ``min_parallax_px`` shows no camera
      motion and scores 0 (errors: the intended rotation angle, and 180 degrees where a translation was intended).
    * no camera motion expected (``"Camera fixed."``, or no camera sentence at all): ``exp(-parallax / static_px)``
      with ``parallax`` the median match displacement in analysis pixels, so a still camera earns the reward.

    Degenerate pairs (too few matches, RANSAC or pose failure: black, constant or unrelated frames) score 0; a video
    with any such pair, or fewer than 2 frames, sets ``degenerate``. Never raises on degenerate input, never NaN.
    A ``camera`` override that does not parse raises (a configuration error, like in the prompt file).

    Raw terms (B,): ``rotation_error_deg`` and ``translation_error_deg`` (means over the pairs where they apply, 0
    where none do), ``parallax_px``, ``static_expected`` (0/1) and ``degenerate``.
    """

    def __init__(
        self,
        fov_deg: float = 60.0,
        motion: MotionScale | None = None,
        gaps: tuple[int, ...] = (4,),
        max_pairs: int = 4,
        max_side: int = 192,
        num_features: int = 256,
        ratio: float = 0.9,
        inlier_px: float = 0.5,
        ransac_px: float = 1.0,
        ransac_iters: int = 8,
        min_matches: int = 16,
        rotation_tolerance_deg: float = 1.0,
        translation_tolerance_deg: float = 20.0,
        min_parallax_px: float = 0.5,
        static_px: float = 1.0,
        min_translation: float = 1e-3,
    ) -> None:
        """
        Args:
            fov_deg: assumed horizontal field of view of the videos (the same as ``camera.fov_deg`` of the module).
            motion: how far one motion of the plan goes (``camera.motion`` of the module); defaults to MotionScale().
            gaps: frame gaps of the pairs compared.
            max_pairs: pairs per gap, spread over the video.
            max_side: frames are analysed with their long side resized to at most this.
            num_features: SIFT keypoints per frame.
            ratio: Lowe ratio for matching.
            inlier_px: Sampson distance counting a match as consistent (unused here; equal geometry settings let
                this reward share one feature analysis of the batch with the epipolar reward).
            ransac_px: RANSAC inlier threshold for the fundamental matrix (analysis pixels).
            ransac_iters: RANSAC batches of minimal samples (2048 each).
            min_matches: fewer matches make a pair degenerate.
            rotation_tolerance_deg: rotation error (degrees) scoring exp(-1), plus half the intended rotation.
            translation_tolerance_deg: translation-direction error (degrees) scoring exp(-1).
            min_parallax_px: median match displacement (analysis pixels) under which a pair shows no camera motion.
            static_px: for a static prompt, the median displacement (analysis pixels) that scores exp(-1).
            min_translation: intended translations shorter than this (scene units) have no direction to compare.
        """
        super().__init__()
        self.fov_deg = fov_deg
        self.motion = motion or MotionScale()
        self.settings = GeometrySettings(
            gaps, max_pairs, max_side, num_features, ratio, ransac_px, inlier_px, ransac_iters, min_matches
        )
        self.min_matches = min_matches
        self.rotation_tolerance_deg = rotation_tolerance_deg
        self.translation_tolerance_deg = translation_tolerance_deg
        self.min_parallax_px = min_parallax_px
        self.static_px = static_px
        self.min_translation = min_translation

    @torch.no_grad()
    def forward(
        self,
        videos: torch.Tensor,
        prompts: Sequence[str],
        cameras: Sequence[str | None] | None = None,
        **metadata: Any,
    ) -> dict[str, torch.Tensor]:
        """Score ``videos`` (B, F, 3, H, W) in [0, 1] against the camera motion of ``prompts`` (or of ``cameras[b]``,
        an explicit camera description, where given)."""
        check_videos(videos)
        batch, num_frames = videos.shape[:2]
        plans = [plan_for_prompt(p, cameras[b] if cameras is not None else None) for b, p in enumerate(prompts)]
        out = {
            key: torch.zeros(batch)
            for key in ("score", "rotation_error_deg", "translation_error_deg", "parallax_px", "degenerate")
        }
        out["static_expected"] = torch.tensor([float(p.is_static) for p in plans])
        if num_frames < 2:
            out["degenerate"] += 1
            return {k: v.to(videos.device) for k, v in out.items()}
        # inference-mode tensors (Lightning's validate/test) have no version counter, which the cache keys on
        analysis = shared_analysis(videos, self.settings, cache=not videos.is_inference())
        intrinsics = intrinsics_from_fov(self.fov_deg, *analysis.size).to(videos.device)
        for b, plan in enumerate(plans):
            poses = camera_trajectory(plan, num_frames, self.motion).to(videos.device)
            terms = self._score_video(analysis, b, poses, intrinsics, plan.is_static)
            for key, value in terms.items():
                out[key][b] = value
        return {k: v.to(videos.device) for k, v in out.items()}

    def _score_video(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, static: bool
    ) -> dict[str, float]:
        """Per-pair scores of video ``b`` averaged; see the class docstring."""
        num_pairs = len(analysis.pairs)
        geometry = analysis.geometry
        rotation_gt, translation_gt = relative_motion(poses, analysis.pairs[:, 0], analysis.pairs[:, 1])
        scores, rotation_errors, translation_errors, parallaxes = [], [], [], []
        degenerate = False
        for p in range(num_pairs):
            k = b * num_pairs + p
            parallax = float(geometry.parallax_px[k])
            enough = float(geometry.num_matches[k]) >= self.min_matches
            parallaxes.append(parallax if enough else 0.0)
            if not enough:
                degenerate = True
                scores.append(0.0)
                continue
            if static:
                scores.append(math.exp(-parallax / self.static_px))
                continue
            estimate = self._estimate(analysis, k, intrinsics, parallax)
            if estimate is None:
                degenerate = True
                scores.append(0.0)
                continue
            rotation, direction = estimate
            intended_deg = float(rotation_angle_deg(rotation_gt[p]))
            error = float(rotation_angle_deg(rotation @ rotation_gt[p].T))
            rotation_errors.append(error)
            score = math.exp(-error / (self.rotation_tolerance_deg + 0.5 * intended_deg))
            length = float(translation_gt[p].norm())
            if length > self.min_translation:
                angle = 180.0  # no image motion: no translation either
                if direction is not None:
                    cosine = float(direction @ translation_gt[p]) / length
                    angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
                translation_errors.append(angle)
                score = score * math.exp(-angle / self.translation_tolerance_deg)
            scores.append(0.0 if direction is None else score)
        mean = lambda values: sum(values) / len(values) if values else 0.0  # noqa: E731
        return {
            "score": mean(scores),
            "rotation_error_deg": mean(rotation_errors),
            "translation_error_deg": mean(translation_errors),
            "parallax_px": mean(parallaxes),
            "degenerate": float(degenerate or num_pairs == 0),
        }

    def _estimate(
        self, analysis: VideoGeometry, k: int, intrinsics: torch.Tensor, parallax: float
    ) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """Estimated (rotation (3, 3), unit translation (3,) or None) of pair ``k``: identity and None when the pair
        shows no image motion, None when its geometry is degenerate."""
        if parallax < self.min_parallax_px:
            return torch.eye(3, device=intrinsics.device), None
        if not bool(analysis.geometry.valid[k]):
            return None
        points1, points2 = analysis.matches.of_pair(k)
        try:
            rotation, translation = relative_pose(
                analysis.geometry.fundamental[k], intrinsics, points1.float(), points2.float()
            )
        except Exception:  # a decomposition failure on a degenerate fundamental matrix: score the pair as worst
            log.debug("relative pose failed for pair %d", k, exc_info=True)
            return None
        if not (torch.isfinite(rotation).all() and torch.isfinite(translation).all()):
            return None
        return rotation.float(), translation.float()
