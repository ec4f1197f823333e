"""Scores of an estimated camera path against the intended one: World-R1's release formula and a scale-free form.

Both paths are relative to frame 0 and include it (the origin, identity rotation), in frame 0's camera axes (OpenCV:
x right, y down, z forward); rotations ``X_k = R X_0 + t``. The estimated centres have the video's own unit (a
monocular video has no metric scale), the intended ones the camera grammar's scene units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from kornia.geometry.conversions import rotation_matrix_to_axis_angle

from world_r1.geometry.path import umeyama
from world_r1.geometry.pose import rotation_angle_deg


@dataclass
class PathPair:
    """An estimated and an intended path over the same N cameras (frame 0 first): centres (N, 3), rotations
    (N, 3, 3) and zooms (N,) (focal length over frame 0's; None: a fixed lens, all 1)."""

    estimated_centres: torch.Tensor
    intended_centres: torch.Tensor
    estimated_rotations: torch.Tensor
    intended_rotations: torch.Tensor
    estimated_zooms: torch.Tensor | None = None
    intended_zooms: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.estimated_centres)
        for name in ("estimated_zooms", "intended_zooms"):
            if getattr(self, name) is None:
                setattr(self, name, torch.ones(n))
        shapes = (self.intended_centres.shape, self.estimated_rotations.shape, self.intended_rotations.shape)
        shapes += (self.estimated_zooms.shape, self.intended_zooms.shape)
        if shapes != ((n, 3), (n, 3, 3), (n, 3, 3), (n,), (n,)):
            raise ValueError(
                f"PathPair needs N centres (N, 3), rotations (N, 3, 3) and zooms (N,) for both paths, got {shapes}."
            )
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name).double().cpu())


def arc_length(path: torch.Tensor) -> float:
    """Length of the polyline through the points (N, 3)."""
    return float((path[1:] - path[:-1]).norm(dim=1).sum()) if len(path) > 1 else 0.0


def _cosine(estimated: torch.Tensor, intended: torch.Tensor) -> float:
    """Length-weighted agreement of corresponding vectors (N, 3): ``sum a . b / sum |a| |b|`` in [-1, 1]; 0 when
    either set is all zero."""
    norms = (estimated.norm(dim=1) * intended.norm(dim=1)).sum()
    return float((estimated * intended).sum() / norms) if float(norms) > 1e-12 else 0.0


def release_score(
    paths: PathPair,
    align_rotation: bool = False,
    rotation_deg: float = 6.0,
    still: float = 0.05,
    min_translation: float = 1e-3,
) -> dict[str, float]:
    """World-R1's S_traj as its release defines it, clipped to [0, 1]:

    ``trans = 0.4 cos + 0.3 exp(-|ln(len_pred / len_gt)|) + 0.3 exp(-mean_err / (2 len_gt))`` with ``cos`` the
    length-weighted cosine of corresponding centres before alignment, ``len_pred`` and ``mean_err`` (mean distance of
    corresponding centres) after Umeyama alignment of the estimated path onto the intended one (with rotation where
    ``align_rotation``, else the scale alone: both are in frame 0's axes) and ``len_gt`` the intended arc length;
    ``rot = 0.5 exp(-mean_geodesic / rotation_deg) + 0.3 exp(-final / rotation_deg) + 0.2 extent``, geodesic angles
    between corresponding rotations in degrees, ``final`` at the last camera, ``extent = min / max`` of the two
    final rotation angles (1 when both are under 1 degree); ``score = 0.5 (trans + rot)``. Where no travel is intended
    (``len_gt < min_translation``), ``trans = exp(-len_raw / still)``: the camera earns it by not travelling. The
    release's formula has no lens: zooms are not compared (:func:`shape_score` compares them).
    """
    estimated, intended = paths.estimated_centres, paths.intended_centres
    length_gt, length_raw = arc_length(intended), arc_length(estimated)
    if length_gt < min_translation:
        translation = math.exp(-length_raw / still)
        direction, ratio, error = 1.0, 1.0, 0.0
    else:
        direction = _cosine(estimated, intended)
        scale, rotation, shift = umeyama(estimated, intended, rotation=align_rotation)
        aligned = scale * estimated @ rotation.T + shift
        ratio = max(arc_length(aligned) / length_gt, 1e-6)
        error = float((aligned - intended).norm(dim=1).mean()) / length_gt
        translation = 0.4 * direction + 0.3 * math.exp(-abs(math.log(ratio))) + 0.3 * math.exp(-error / 2)
    errors = rotation_angle_deg(paths.estimated_rotations @ paths.intended_rotations.transpose(1, 2))
    mean_error, final_error = float(errors.mean()), float(errors[-1])
    angle_estimated = float(rotation_angle_deg(paths.estimated_rotations[-1]))
    angle_intended = float(rotation_angle_deg(paths.intended_rotations[-1]))
    largest = max(angle_estimated, angle_intended)
    extent = 1.0 if largest < 1.0 else min(angle_estimated, angle_intended) / largest
    rotation_part = (
        0.5 * math.exp(-mean_error / rotation_deg) + 0.3 * math.exp(-final_error / rotation_deg) + 0.2 * extent
    )
    return {
        "score": min(1.0, max(0.0, 0.5 * (translation + rotation_part))),
        "translation": translation,
        "rotation": rotation_part,
        "direction": direction,
        "length_ratio": ratio,
        "path_error": error,
        "rotation_error_deg": mean_error,
        "final_rotation_error_deg": final_error,
    }


def shape_score(
    paths: PathPair,
    still: float = 0.05,
    still_deg: float = 3.0,
    min_translation: float = 1e-3,
    min_rotation_deg: float = 1.0,
    still_zoom: float = 0.05,
    min_zoom: float = 0.01,
) -> dict[str, float]:
    """The path's shape and direction, free of scale in travel, turning and zoom: ``score = trans * rot * zoom``.

    Travel: ``trans = max(0, cos_t) * exp(-e_t)`` with ``cos_t`` the length-weighted cosine of corresponding centres
    (a truck left against a truck right: -1, so 0) and ``e_t`` the mean distance of the centres after the least-squares
    scale (Umeyama without rotation) over the intended path's mean distance from frame 0: a camera twice as fast
    along the right path loses nothing. Turning: the same on rotation vectors (axis times angle), so a pan of 10
    degrees matches "pan right" as well as one of 30, and a field of view assumed wrong (which scales the recovered
    angles) costs nothing. Where no travel is intended, ``trans = exp(-len_raw / still)``; where no turning is
    intended (under ``min_rotation_deg``), ``rot = exp(-mean angle / still_deg)``. Zoom: the same on the log focal
    ratios (zoom in against zoom out: 0; a 1.2x zoom matches "zoom in" as well as a 1.5x one); where none is intended
    (every ``|ln z|`` under ``min_zoom``), ``zoom = exp(-mean |ln z| / still_zoom)``. All must agree (a product): the
    opposite orbit has the right travel and the wrong turning, and a dolly in has none of a zoom in's lens change
    (and a zoom in none of its travel).
    """
    estimated, intended = paths.estimated_centres, paths.intended_centres
    if arc_length(intended) < min_translation:
        translation, direction, error = math.exp(-arc_length(estimated) / still), 1.0, 0.0
    else:
        direction = _cosine(estimated, intended)
        translation, error = _shape_agreement(estimated, intended, direction)
    spin_estimated = rotation_matrix_to_axis_angle(paths.estimated_rotations.float()).double()
    spin_intended = rotation_matrix_to_axis_angle(paths.intended_rotations.float()).double()
    if math.degrees(float(spin_intended.norm(dim=1).max())) < min_rotation_deg:
        mean_deg = math.degrees(float(spin_estimated.norm(dim=1).mean()))
        rotation, turning, rotation_error = math.exp(-mean_deg / still_deg), 1.0, 0.0
    else:
        turning = _cosine(spin_estimated, spin_intended)
        rotation, rotation_error = _shape_agreement(spin_estimated, spin_intended, turning)
    zoom, zooming = _zoom_agreement(paths.estimated_zooms.log(), paths.intended_zooms.log(), still_zoom, min_zoom)
    return {
        "score": translation * rotation * zoom,
        "translation": translation,
        "rotation": rotation,
        "zoom": zoom,
        "direction": direction,
        "turning": turning,
        "zooming": zooming,
        "path_error": error,
        "rotation_shape_error": rotation_error,
    }


def _zoom_agreement(
    estimated: torch.Tensor, intended: torch.Tensor, still: float, minimum: float
) -> tuple[float, float]:
    """The zoom factor of :func:`shape_score` from log focal ratios (N,), their shape agreement or stillness, and
    their cosine (1 where no zoom is intended)."""
    if float(intended.abs().max()) < minimum:
        return math.exp(-float(estimated.abs().mean()) / still), 1.0
    estimated, intended = (torch.nn.functional.pad(logs[:, None], (0, 2)) for logs in (estimated, intended))
    cosine = _cosine(estimated, intended)  # as vectors [ln z, 0, 0]
    return _shape_agreement(estimated, intended, cosine)[0], cosine


def _shape_agreement(estimated: torch.Tensor, intended: torch.Tensor, cosine: float) -> tuple[float, float]:
    """``max(0, cosine) * exp(-e)`` and ``e``: the mean distance after the least-squares scale (at least 0) over the
    intended vectors' mean length."""
    scale, _, shift = umeyama(estimated, intended, rotation=False)
    aligned = scale * estimated + shift
    error = float((aligned - intended).norm(dim=1).mean() / intended.norm(dim=1).mean().clamp_min(1e-12))
    return max(0.0, cosine) * math.exp(-error), error
