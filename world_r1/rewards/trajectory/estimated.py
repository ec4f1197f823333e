"""The trajectory terms that read the whole camera path of the video, relative to frame 0, from keyframe pairs of the
shared analysis, and compare it with the intended path at the same frames."""

from __future__ import annotations

import logging

import torch

from world_r1.camera import MotionScale
from world_r1.camera.grammar import CameraPlan
from world_r1.geometry import GeometrySettings, VideoGeometry
from world_r1.geometry.chain import PATH_ESTIMATORS, estimate_chained_path
from world_r1.geometry.path import estimate_path
from world_r1.rewards.path_scores import PathPair
from world_r1.rewards.trajectory.base import CameraTrajectoryReward

log = logging.getLogger(__name__)

#: anchors the path-reading terms ask for when they analyse videos themselves
PATH_ANCHORS = 8


class EstimatedPathReward(CameraTrajectoryReward):
    """Base of the terms that score the estimated camera path (frame 0 and the keyframes, ``path_estimator``) against
    the intended one; subclasses compare the two in :meth:`compare`.

    Anchors that cannot be reconstructed are left out; none at all scores 0 (``degenerate``), fewer than half sets
    ``degenerate``. The shared analysis must pair the keyframes as the estimator reads them: ``geometry.anchors`` > 0
    and ``geometry.path_pairs`` to match (checked at start-up). Raw terms besides the form's: ``known`` (share of
    anchors reconstructed).
    """

    #: the estimator used when ``path_estimator`` is not given
    default_estimator = "chained"

    def __init__(
        self,
        fov_deg: float = 60.0,
        motion: MotionScale | None = None,
        path_estimator: str | None = None,
        homography_px: float = 1.0,
        estimate_fov: bool = False,
    ) -> None:
        """
        Args:
            fov_deg: assumed horizontal field of view of the videos (the same as ``camera.fov_deg`` of the module).
            motion: how far one motion of the plan goes (``camera.motion`` of the module); defaults to MotionScale().
            path_estimator: how the video's camera path is read: ``"chained"`` (consecutive keyframes, each step's
                motion chosen by model selection, :mod:`world_r1.geometry.chain`; needs ``geometry.path_pairs:
                consecutive``) or ``"anchored"`` (each keyframe against frame 0, zooms told from dolly moves,
                :func:`~world_r1.geometry.path.estimate_path`; ``geometry.path_pairs: first``). Default: the form's.
            homography_px: anchored estimator: a pair whose matches obey one homography within this error (analysis
                pixels, 90th percentile, mismatches aside) is read as turning or zooming, without travel.
            estimate_fov: anchored estimator: read the path with the focal length the video's anchors agree on best
                (:func:`~world_r1.geometry.path.estimate_focal_length`) instead of ``fov_deg``. Off by default: on
                the photograph clips of ``benchmarks.validation.trajectory`` (45-75 degree lenses) it lowered the
                shape form's own-sentence median from 0.90 to 0.86 and its right directions from 97 % to 92 %
                (two-view focal estimates are noisy; measured before zoom was a motion of its own).
        """
        super().__init__(fov_deg, motion)
        name = type(self).__name__
        if homography_px <= 0:
            raise ValueError(f"{name}.homography_px must be > 0 (e.g. 1.0), got {homography_px}.")
        self.path_estimator = path_estimator or self.default_estimator
        if self.path_estimator not in PATH_ESTIMATORS:
            raise ValueError(f"{name}.path_estimator must be one of {sorted(PATH_ESTIMATORS)}, got {path_estimator!r}.")
        self.homography_px, self.estimate_fov = homography_px, estimate_fov

    def standalone_settings(self) -> GeometrySettings:
        return GeometrySettings(anchors=PATH_ANCHORS, path_pairs=PATH_ESTIMATORS[self.path_estimator])

    def check_settings(self, settings: GeometrySettings) -> None:
        name = type(self).__name__
        if settings.anchors < 1:
            raise ValueError(
                f"{name} reads the camera path from keyframe pairs: set the reward's geometry.anchors "
                f"(e.g. {PATH_ANCHORS})."
            )
        pairs = PATH_ESTIMATORS[self.path_estimator]
        if settings.path_pairs != pairs:
            raise ValueError(
                f"{name}(path_estimator={self.path_estimator!r}) reads keyframe pairs made with geometry.path_pairs: "
                f"{pairs}, got {settings.path_pairs!r}: set the reward's geometry.path_pairs to {pairs} (or "
                f"path_estimator to {'anchored' if pairs == 'consecutive' else 'chained'})."
            )
        if settings.detector == "corners":
            log.warning(
                "%s with geometry.detector: corners reads zooms as travel: corner positions drift as the picture is "
                "magnified (about 0.7 px over a 1.35x zoom), which hides that a zoom is one homography. Keep "
                "geometry.detector: sift for prompts that zoom.",
                name,
            )

    def score_video(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, plan: CameraPlan
    ) -> dict[str, float]:
        """The path of video ``b``, read with frame 0's lens (``intrinsics[0]``; the intended zooms are the other
        frames' focal lengths over it), compared by :meth:`compare`."""
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
        share = float(path.known.float().mean())
        return self.compare(paths, len(poses) - 1) | base | {"known": share, "degenerate": float(share < 0.5)}

    def compare(self, paths: PathPair, steps: int) -> dict[str, float]:
        """``score`` and the form's raw terms of the estimated path against the intended one (``paths``), the video
        having ``steps`` frame intervals."""
        raise NotImplementedError
