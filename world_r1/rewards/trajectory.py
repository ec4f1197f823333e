"""Trajectory alignment (World-R1's S_traj): does the camera in the video move the way the prompt says, and as far?

The intended motion comes from the prompt's camera plan (:mod:`world_r1.camera`) sampled at the video's frame count.
Two ways to compare it with the video, on frame pairs ``(i, j)`` of the geometry core:

* ``form="flow"`` (default): the measured displacements of the matches that obey the pair's rigid geometry against
  the displacements the intended camera path (and lens, where it zooms) induces at the same pixels over the default
  scene (ground plane and backdrop, :mod:`world_r1.camera.flow`: the flow that warps the noise), in direction and in
  size. A camera that
  moves the right way but too little (or freezes) loses the size part, as World-R1's path-length term does.
* ``form="pose"``: the relative camera rotation and the direction of translation recovered from the essential matrix
  (intrinsics from an assumed field of view) against the intended ones, both ``X_j = R X_i + t`` in OpenCV axes.
  Scale-free (a slower camera loses nothing), and fragile where lateral travel and rotation look alike.
* ``form="path"``: World-R1's S_traj exactly as its release defines it
  (:func:`~world_r1.rewards.path_scores.release_trajectory_score`): the camera path relative to frame 0, chained from
  consecutive keyframes of the analysis (``geometry.anchors`` with ``geometry.path_pairs: consecutive``, each step read
  as still, turn, travel or both by model selection, :mod:`world_r1.geometry.chain`; or ``path_estimator: anchored``,
  each keyframe against frame 0),
  aligned onto the intended path by the release's Umeyama similarity (RANSAC from 6 poses), and scored by travel
  (cosine, length ratio, mean error) and turning (mean and last geodesic error, total turning), weighted by whether
  the intended path travels and turns; a prompt without camera words scores 0. It is scored on frame 0 and the
  anchors (9 poses with 8 anchors, not the release's 81: a reconstruction of every frame would cost 10x the
  analysis), with the release's error tolerance of 81 frames (the target's length over ``frames - 1`` steps).
* ``form="shape"``: the same estimated path compared in shape and direction only, free of scale in travel, turning
  and zoom (:func:`~world_r1.rewards.path_scores.shape_score`): the right camera at any speed or assumed field of view
  scores high, the opposite one 0, and a zoom (a homography that scales the view, no travel) is told apart from a
  dolly (travel, with parallax).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch

from world_r1.camera import (
    DefaultScene,
    MotionScale,
    camera_trajectory,
    flow_at,
    plan_for_prompt,
    relative_motion,
    zoom_schedule,
    zoomed,
)
from world_r1.geometry import GeometrySettings, VideoGeometry, intrinsics_from_fov, relative_pose
from world_r1.geometry.chain import PATH_ESTIMATORS, estimate_chained_path
from world_r1.geometry.path import CameraPath, estimate_path
from world_r1.geometry.pose import rotation_angle_deg
from world_r1.rewards.base import GeometricReward
from world_r1.rewards.path_scores import PathPair, release_trajectory_score, shape_score

log = logging.getLogger(__name__)

_PATH_KEYS = (
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
_SHAPE_KEYS = (
    "translation",
    "rotation",
    "zoom",
    "direction",
    "turning",
    "zooming",
    "path_error",
    "rotation_shape_error",
    "known",
)
#: anchors the path form asks for when it analyses videos itself
PATH_ANCHORS = 8


class TrajectoryReward(GeometricReward):
    """Per video, ``score`` in [0, 1]: the mean over frame pairs of a per-pair agreement (flow and pose forms), or one
    comparison of the whole camera path relative to frame 0 (path and shape forms).

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

    ``form="path"``: :func:`~world_r1.rewards.path_scores.release_trajectory_score` on the estimated path (frame 0
    and the keyframes, ``path_estimator``) against the intended one at the same frames.
    ``form="shape"`` reads the same path with
    :func:`~world_r1.rewards.path_scores.shape_score`: ``score = trans * rot * zoom``, each ``max(0, cos) * exp(-e)`` on
    the centres and on the rotation vectors after a least-squares scale (``still_deg`` for turning where none is
    intended) and, the same way, on the log zoom of rotation-only anchors (``still_zoom`` where none is intended).
    Anchors that cannot be reconstructed are left out; none at all scores 0,
    fewer than half sets ``degenerate``. The shared analysis must pair frame 0 with other frames:
    ``geometry.anchors`` > 0 (checked at start-up).

    Degenerate pairs (too few matches; in the pose form also RANSAC or pose failure: black, constant or unrelated
    frames) score 0; a video with any such pair, or fewer than 2 frames, sets ``degenerate``. Never raises on
    degenerate input, never NaN. A ``camera`` override that does not parse raises (a configuration error, like in the
    prompt file).

    Raw terms (B,): ``parallax_px``, ``static_expected`` (0/1) and ``degenerate``; flow form: ``direction`` and
    ``size`` (the pairs' factors of the score: direction 1 where none is expected, both 0 on a degenerate pair) and
    ``motion_ratio`` (geometric mean over the measured pairs of ``(|d| + c) / (|f| + c)``: 1 is the intended amount
    of motion, below 1 too little; 0 when no pair was measured); pose form: ``rotation_error_deg`` and
    ``translation_error_deg`` (means over the pairs where they apply, 0 where none do); path form: ``translation``
    and ``rotation`` (T and Q), ``direction`` (cos), ``length_ratio``, ``path_error`` (mean distance of matching
    centres, in the target's units), ``turning_deg`` (the estimate's total turning), ``rotation_error_deg``,
    ``final_rotation_error_deg`` and ``known`` (share of anchors reconstructed); shape form: ``translation``,
    ``rotation``, ``zoom`` (the three factors), ``direction``,
    ``turning`` and ``zooming`` (the cosines of travel, of turning and of zoom; 1 where none is intended),
    ``path_error``, ``rotation_shape_error`` and ``known``.
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
        path_still: float = 0.05,
        still_deg: float = 3.0,
        homography_px: float = 1.0,
        estimate_fov: bool = False,
        still_zoom: float = 0.05,
        path_estimator: str | None = None,
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
            min_translation: pose and path forms: intended translations shorter than this (scene units) are none.
            path_still: path and shape forms: estimated travel (median scene depths) scoring exp(-1) where none is
                intended.
            still_deg: shape form: estimated turning (degrees, mean over the path) scoring exp(-1) where none is
                intended.
            homography_px: path and shape forms: a pair whose matches obey one homography within this error
                (analysis pixels, 90th percentile, mismatches aside) is read as turning or zooming, without travel.
            estimate_fov: path and shape forms: read the path with the focal length the video's anchors agree on
                best (:func:`~world_r1.geometry.path.estimate_focal_length`) instead of ``fov_deg``. Off by default:
                on the photograph clips of ``benchmarks.trajectory_validation`` (45-75 degree lenses) it lowered the
                shape form's own-sentence median from 0.90 to 0.86 and its right directions from 97 % to 92 %
                (two-view focal estimates are noisy; measured before zoom was a motion of its own, and a zooming
                anchor, whose homography is no rotation, misleads the estimate); the shape form is already free
                of the turning's scale.
            still_zoom: shape form: estimated zoom (mean |ln focal ratio| over the path) scoring exp(-1) where none
                is intended.
            path_estimator: path and shape forms: how the video's camera path is read: ``"chained"`` (consecutive
                keyframes, each step's motion chosen by model selection, :mod:`world_r1.geometry.chain`; needs
                ``geometry.path_pairs: consecutive``) or ``"anchored"`` (each keyframe against frame 0, zooms told
                from dolly moves, :func:`~world_r1.geometry.path.estimate_path`; ``geometry.path_pairs: first``).
                Default: chained for the path form (footage-like clips: ``benchmarks.path_validation``), anchored for
                the shape form (it scores zooms).
        """
        super().__init__()
        if form not in ("flow", "pose", "path", "shape"):
            raise ValueError(f"TrajectoryReward.form must be 'flow', 'pose', 'path' or 'shape', got {form!r}.")
        if min(path_still, still_deg, homography_px, still_zoom) <= 0:
            raise ValueError("TrajectoryReward needs path_still, still_deg, homography_px and still_zoom > 0.")
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
        self.path_still = path_still
        self.still_deg, self.homography_px, self.estimate_fov = still_deg, homography_px, estimate_fov
        self.still_zoom = still_zoom
        self.path_estimator = path_estimator or ("chained" if form == "path" else "anchored")
        if self.path_estimator not in PATH_ESTIMATORS:
            raise ValueError(
                f"TrajectoryReward.path_estimator must be one of {sorted(PATH_ESTIMATORS)}, got {path_estimator!r}."
            )
        keys = {
            "flow": ("direction", "size", "motion_ratio"),
            "pose": ("rotation_error_deg", "translation_error_deg"),
            "path": _PATH_KEYS,
            "shape": _SHAPE_KEYS,
        }[form]
        self.worst = {"score": 0.0, **dict.fromkeys(keys, 0.0), "parallax_px": 0.0}
        #: the camera paths the path and shape forms estimated for the last batch (None where not estimated), so a
        #: report can show why a video scored as it did (``evaluate``'s ``camera_path``)
        self.last_paths: list[CameraPath | None] = []

    def standalone_settings(self) -> GeometrySettings:
        if self.form in ("path", "shape"):
            return GeometrySettings(anchors=PATH_ANCHORS, path_pairs=PATH_ESTIMATORS[self.path_estimator])
        return GeometrySettings()

    def check_settings(self, settings: GeometrySettings) -> None:
        if self.form in ("path", "shape") and settings.anchors < 1:
            raise ValueError(
                f"TrajectoryReward(form={self.form!r}) reads the camera path from keyframe pairs: set the reward's "
                f"geometry.anchors (e.g. {PATH_ANCHORS})."
            )
        pairs = PATH_ESTIMATORS[self.path_estimator]
        if self.form in ("path", "shape") and settings.path_pairs != pairs:
            raise ValueError(
                f"TrajectoryReward(path_estimator={self.path_estimator!r}) reads keyframe pairs made with "
                f"geometry.path_pairs: {pairs}, got {settings.path_pairs!r}: set the reward's geometry.path_pairs to "
                f"{pairs} (or path_estimator to {'anchored' if pairs == 'consecutive' else 'chained'})."
            )
        if self.form in ("path", "shape") and settings.detector == "corners":
            log.warning(
                "TrajectoryReward(form=%r) with geometry.detector: corners reads zooms as travel: corner positions "
                "drift as the picture is magnified (about 0.7 px over a 1.35x zoom), which hides that a zoom is one "
                "homography. Keep geometry.detector: sift for prompts that zoom.",
                self.form,
            )

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
        self.last_paths = [None] * batch
        intrinsics = intrinsics_from_fov(self.fov_deg, *analysis.size).to(videos.device)
        score_video = {
            "flow": self._score_flow,
            "pose": self._score_pose,
            "path": self._score_path,
            "shape": self._score_path,
        }[self.form]
        for b, plan in enumerate(plans):
            poses = camera_trajectory(plan, num_frames, self.motion).to(videos.device)
            zooms = zoom_schedule(plan, num_frames, self.motion).to(videos.device)
            if self.form == "path" and not plan.has_camera:  # the release: a prompt without camera words scores 0
                out["degenerate"][b] = 0.0
                continue
            terms = score_video(analysis, b, poses, zoomed(intrinsics, zooms), plan.is_static)
            for key, value in terms.items():
                out[key][b] = value
        return {k: v.to(videos.device) for k, v in out.items()}

    def _score_flow(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, static: bool
    ) -> dict[str, float]:
        """Flow-form scores of video ``b``'s pairs, averaged, with the intended path's ``poses`` and ``intrinsics``
        (F, 3, 3: the lens of each frame); see the class docstring."""
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
        """Pose-form scores of video ``b``'s pairs, averaged; see the class docstring. The pose form reads the video
        with frame 0's lens throughout: an intended zoom is no pose motion to it."""
        intrinsics = intrinsics[0]
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

    def _score_path(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, static: bool
    ) -> dict[str, float]:
        """Path- or shape-form scores of video ``b``; see the class docstring. The path is read with frame 0's lens
        (``intrinsics[0]``); the intended zooms are the others' focal lengths over it."""
        if self.path_estimator == "chained":
            path = estimate_chained_path(analysis, b, intrinsics[0])
        else:
            path = estimate_path(analysis, b, intrinsics[0], self.homography_px, estimate_focal=self.estimate_fov)
        self.last_paths[b] = path
        known = path.measured
        parallax = analysis.per_video(analysis.geometry.parallax_px)[b]
        base = {"parallax_px": float(parallax.mean()) if len(parallax) else 0.0, "known": 0.0}
        if not bool(known.any()):
            return dict.fromkeys(self.worst, 0.0) | base | {"degenerate": 1.0}
        frames = path.frames[known]
        intended = poses[frames.to(poses.device)].double().cpu()
        zoom_gt = (intrinsics[frames.to(intrinsics.device), 0, 0] / intrinsics[0, 0, 0]).double().cpu()
        one = torch.ones(1, dtype=torch.float64)
        rotation_gt = intended[:, :3, :3]
        centre_gt = -(rotation_gt.transpose(1, 2) @ intended[:, :3, 3:])[..., 0]
        origin, eye = torch.zeros(1, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[None]
        paths = PathPair(
            torch.cat([origin, path.centres[known]]),
            torch.cat([origin, centre_gt]),
            torch.cat([eye, path.rotations[known]]),
            torch.cat([eye, rotation_gt]),
            torch.cat([one, path.zooms[known]]),
            torch.cat([one, zoom_gt]),
        )
        if self.form == "path":
            terms = release_trajectory_score(
                _camera_to_world(paths.estimated_rotations, paths.estimated_centres),
                _camera_to_world(paths.intended_rotations, paths.intended_centres),
                steps=len(poses) - 1,  # the release's tolerance: the target's length per step over all frames
            )
        else:
            terms = shape_score(paths, self.path_still, self.still_deg, self.min_translation, 1.0, self.still_zoom)
        share = float(path.known.float().mean())
        return terms | base | {"known": share, "degenerate": float(share < 0.5)}


def _camera_to_world(rotations: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Camera-to-world poses (N, 4, 4) of cameras with ``X_k = R X_0 + t`` rotations (N, 3, 3) and centres (N, 3)."""
    poses = torch.eye(4, dtype=torch.float64).repeat(len(centres), 1, 1)
    poses[:, :3, :3] = rotations.double().transpose(1, 2)
    poses[:, :3, 3] = centres.double()
    return poses
