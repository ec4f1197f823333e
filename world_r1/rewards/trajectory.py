"""Trajectory alignment (World-R1's S_traj): does the camera in the video move the way the prompt says, and as far?

The intended motion comes from the prompt's camera plan (:mod:`world_r1.camera`) sampled at the video's frame count.
Two ways to compare it with the video, on frame pairs ``(i, j)`` of the geometry core:

* ``form="flow"`` (default): the measured displacements of the matches that obey the pair's rigid geometry against
  the displacements the intended camera path induces at the same pixels over the default scene (ground plane and
  backdrop, :mod:`world_r1.camera.flow`: the flow that warps the noise), in direction and in size. A camera that
  moves the right way but too little (or freezes) loses the size part, as World-R1's path-length term does.
* ``form="pose"``: the relative camera rotation and the direction of translation recovered from the essential matrix
  (intrinsics from an assumed field of view) against the intended ones, both ``X_j = R X_i + t`` in OpenCV axes.
  Scale-free (a slower camera loses nothing), and fragile where lateral travel and rotation look alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch

from world_r1.camera import DefaultScene, MotionScale, camera_trajectory, flow_at, plan_for_prompt, relative_motion
from world_r1.geometry import VideoGeometry, intrinsics_from_fov, relative_pose
from world_r1.geometry.pose import rotation_angle_deg
from world_r1.rewards.base import GeometricReward

log = logging.getLogger(__name__)


class TrajectoryReward(GeometricReward):
    """Per video, ``score`` in [0, 1] is the mean over frame pairs of a per-pair agreement.

    ``form="flow"``: with ``d`` the displacements of the pair's rigid matches (Sampson distance within ``ransac_px`` of
    its fundamental matrix; all matches where it has none) and ``f`` the displacements the intended path gives the
    same pixels over ``scene``, ``size = exp(-|ln((|d| + c) / (|f| + c))| / ln(size_tolerance))`` with medians of
    the lengths and ``c = motion_slack_px`` (a camera twice too fast or too slow scores exp(-1)), and, where the
    intended motion is visible (``median |f| > c``), ``direction = max(0, sum(d . f) / sum(|d| |f|))`` (the opposite
    pan scores 0). The pair scores ``size * direction``; a static camera expected (``"Camera fixed."`` or no camera
    sentence) is scored on its size alone, so a still camera earns it.

    ``form="pose"``:

    * camera motion expected (the prompt's plan moves): ``rot = exp(-e_R / (rotation_tolerance_deg + 0.5 * |R_gt|))``
      with ``e_R`` the geodesic angle between estimated and intended relative rotations (so a correct pan beats no
      pan, which beats the opposite pan, whatever the intended speed); where the intended translation is non-zero,
      ``trans = exp(-e_t / translation_tolerance_deg)`` with ``e_t`` the angle between the estimated and intended
      translation directions, and the pair scores ``rot * trans`` (both must agree: the opposite dolly has the right
      rotation), else ``rot``. A pair whose median match displacement is below ``min_parallax_px`` shows no camera
      motion and scores 0 (errors: the intended rotation angle, and 180 degrees where a translation was intended).
    * no camera motion expected (``"Camera fixed."``, or no camera sentence at all): ``exp(-parallax / static_px)``
      with ``parallax`` the median match displacement in analysis pixels, so a still camera earns the reward.

    Degenerate pairs (too few matches; in the pose form also RANSAC or pose failure: black, constant or unrelated
    frames) score 0; a video with any such pair, or fewer than 2 frames, sets ``degenerate``. Never raises on
    degenerate input, never NaN. A ``camera`` override that does not parse raises (a configuration error, like in the
    prompt file).

    Raw terms (B,): ``parallax_px``, ``static_expected`` (0/1) and ``degenerate``; flow form: ``direction`` and
    ``size`` (the pairs' factors of the score: direction 1 where none is expected, both 0 on a degenerate pair) and
    ``motion_ratio`` (geometric mean over the measured pairs of ``(|d| + c) / (|f| + c)``: 1 is the intended amount
    of motion, below 1 too little; 0 when no pair was measured); pose form: ``rotation_error_deg`` and
    ``translation_error_deg`` (means over the pairs where they apply, 0 where none do).
    """

    def __init__(
        self,
        fov_deg: float = 60.0,
        motion: MotionScale | None = None,
        form: str = "flow",
        scene: DefaultScene | None = None,
        size_tolerance: float = 2.0,
        motion_slack_px: float = 1.0,
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
            form: ``"flow"`` (image motion in direction and size) or ``"pose"`` (rotation and translation direction).
            scene: the assumed scene the flow form projects the intended path over (``camera.scene`` of the module).
            size_tolerance: flow form: the factor of too much or too little motion that scores exp(-1).
            motion_slack_px: flow form: pixels added to both lengths, so sub-pixel jitter of a still camera is free.
            rotation_tolerance_deg: pose form: rotation error (degrees) scoring exp(-1), plus half the intended
                rotation.
            translation_tolerance_deg: pose form: translation-direction error (degrees) scoring exp(-1).
            min_parallax_px: pose form: median match displacement (analysis pixels) under which a pair shows no camera
                motion.
            static_px: pose form: for a static prompt, the median displacement (analysis pixels) that scores exp(-1).
            min_translation: pose form: intended translations shorter than this (scene units) have no direction.
        """
        super().__init__()
        if form not in ("flow", "pose"):
            raise ValueError(f"TrajectoryReward.form must be 'flow' or 'pose', got {form!r}.")
        if size_tolerance <= 1.0 or motion_slack_px <= 0:
            raise ValueError("TrajectoryReward needs size_tolerance > 1 (e.g. 2.0) and motion_slack_px > 0 (e.g. 1.0).")
        self.fov_deg = fov_deg
        self.motion = motion or MotionScale()
        self.form = form
        self.scene = scene or DefaultScene()
        self.size_tolerance, self.motion_slack_px = size_tolerance, motion_slack_px
        self.rotation_tolerance_deg = rotation_tolerance_deg
        self.translation_tolerance_deg = translation_tolerance_deg
        self.min_parallax_px = min_parallax_px
        self.static_px = static_px
        self.min_translation = min_translation
        flow_keys, pose_keys = ("direction", "size", "motion_ratio"), ("rotation_error_deg", "translation_error_deg")
        keys = flow_keys if form == "flow" else pose_keys
        self.worst = {"score": 0.0, **dict.fromkeys(keys, 0.0), "parallax_px": 0.0}

    @torch.no_grad()
    def score(
        self,
        videos: torch.Tensor,
        prompts: Sequence[str],
        analysis: VideoGeometry,
        cameras: Sequence[str | None] | None = None,
        **metadata: Any,
    ) -> dict[str, torch.Tensor]:
        """Score ``videos`` (B, F, 3, H, W) in [0, 1] against the camera motion of ``prompts`` (or of ``cameras[b]``,
        an explicit camera description, where given)."""
        batch, num_frames = videos.shape[:2]
        plans = [plan_for_prompt(p, cameras[b] if cameras is not None else None) for b, p in enumerate(prompts)]
        out = {key: torch.zeros(batch) for key in self.worst}
        out["degenerate"] = torch.zeros(batch)
        out["static_expected"] = torch.tensor([float(p.is_static) for p in plans])
        intrinsics = intrinsics_from_fov(self.fov_deg, *analysis.size).to(videos.device)
        score_video = self._score_flow if self.form == "flow" else self._score_pose
        for b, plan in enumerate(plans):
            poses = camera_trajectory(plan, num_frames, self.motion).to(videos.device)
            terms = score_video(analysis, b, poses, intrinsics, plan.is_static)
            for key, value in terms.items():
                out[key][b] = value
        return {k: v.to(videos.device) for k, v in out.items()}

    def _score_flow(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, static: bool
    ) -> dict[str, float]:
        """Flow-form scores of video ``b``'s pairs, averaged; see the class docstring."""
        num_pairs, geometry = len(analysis.pairs), analysis.geometry
        scores, directions, sizes, log_ratios, parallaxes = [], [], [], [], []
        degenerate = num_pairs == 0
        for p, (i, j) in enumerate(analysis.pairs.tolist()):
            k = b * num_pairs + p
            start, end = analysis.matches.of_pair(k)
            parallaxes.append(float(geometry.parallax_px[k]) if len(start) else 0.0)
            target, in_front = flow_at(start, poses[i], poses[j], intrinsics, self.scene)
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
            if not static and intended > self.motion_slack_px:
                cosine = (measured * expected).sum(1) / (measured.norm(dim=1) * expected.norm(dim=1)).clamp_min(1e-9)
                direction = max(0.0, float(cosine.median()))
            scores.append(size * direction)
            directions.append(direction)
            sizes.append(size)
            log_ratios.append(log_ratio)
        mean = lambda values: sum(values) / len(values) if values else 0.0  # noqa: E731
        return {
            "score": mean(scores),
            "direction": mean(directions),
            "size": mean(sizes),
            "motion_ratio": math.exp(mean(log_ratios)) if log_ratios else 0.0,
            "parallax_px": mean(parallaxes),
            "degenerate": float(degenerate),
        }

    def _score_pose(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, static: bool
    ) -> dict[str, float]:
        """Pose-form scores of video ``b``'s pairs, averaged; see the class docstring."""
        num_pairs = len(analysis.pairs)
        geometry = analysis.geometry
        rotation_gt, translation_gt = relative_motion(poses, analysis.pairs[:, 0], analysis.pairs[:, 1])
        scores, rotation_errors, translation_errors, parallaxes = [], [], [], []
        degenerate = False
        for p in range(num_pairs):
            k = b * num_pairs + p
            parallax = float(geometry.parallax_px[k])
            enough = float(geometry.num_matches[k]) >= analysis.settings.min_matches
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
