"""The estimated camera path compared in shape and direction only: free of the speed, the turning's scale and the
assumed field of view, and a zoom told apart from a dolly."""

from __future__ import annotations

from world_r1.camera import MotionScale
from world_r1.rewards.path_scores import PathPair, shape_score
from world_r1.rewards.trajectory.estimated import EstimatedPathReward


class PathShapeReward(EstimatedPathReward):
    """Per video, ``score`` in [0, 1]: :func:`~world_r1.rewards.path_scores.shape_score` of the estimated path
    (frame 0 and the keyframes) against the intended one, ``score = trans * rot * zoom``, each ``max(0, cos) *
    exp(-e)`` on the centres and on the rotation vectors after a least-squares scale (``still_deg`` for turning where
    none is intended) and, the same way, on the log zoom of rotation-only anchors (``still_zoom`` where none is
    intended). The right camera at any speed or assumed field of view scores high, the opposite one 0, and a zoom (a
    homography that scales the view, no travel) is told apart from a dolly (travel, with parallax).

    Raw terms: ``translation``, ``rotation``, ``zoom`` (the three factors), ``direction``, ``turning`` and
    ``zooming`` (the cosines of travel, of turning and of zoom; 1 where none is intended), ``path_error``,
    ``rotation_shape_error`` and ``known``.
    """

    keys = (
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
    default_estimator = "anchored"  # it scores zooms, which the anchored estimate tells from dolly moves

    def __init__(
        self,
        fov_deg: float = 60.0,
        motion: MotionScale | None = None,
        path_estimator: str | None = None,
        homography_px: float = 1.0,
        estimate_fov: bool = False,
        path_still: float = 0.05,
        still_deg: float = 3.0,
        still_zoom: float = 0.05,
        min_translation: float = 1e-3,
    ) -> None:
        """
        Args:
            fov_deg: assumed horizontal field of view of the videos (the same as ``camera.fov_deg`` of the module).
            motion: how far one motion of the plan goes (``camera.motion`` of the module); defaults to MotionScale().
            path_estimator: ``"anchored"`` (default: zooms told from dolly moves, ``geometry.path_pairs: first``) or
                ``"chained"`` (``geometry.path_pairs: consecutive``).
            homography_px: anchored estimator: the homography error (analysis pixels) under which a pair is read as
                turning or zooming, without travel.
            estimate_fov: anchored estimator: read the path with the focal length the anchors agree on best.
            path_still: estimated travel (median scene depths) scoring exp(-1) where none is intended.
            still_deg: estimated turning (degrees, mean over the path) scoring exp(-1) where none is intended.
            still_zoom: estimated zoom (mean |ln focal ratio| over the path) scoring exp(-1) where none is intended.
            min_translation: intended travel shorter than this (the camera path's units) counts as none.
        """
        super().__init__(fov_deg, motion, path_estimator, homography_px, estimate_fov)
        if min(path_still, still_deg, still_zoom) <= 0:
            raise ValueError("PathShapeReward needs path_still, still_deg and still_zoom > 0 (e.g. 0.05, 3.0, 0.05).")
        self.path_still, self.still_deg, self.still_zoom = path_still, still_deg, still_zoom
        self.min_translation = min_translation

    def compare(self, paths: PathPair, steps: int) -> dict[str, float]:
        return shape_score(paths, self.path_still, self.still_deg, self.min_translation, 1.0, self.still_zoom)
