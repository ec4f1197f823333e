"""Scores of an estimated camera path against the intended one: World-R1's S_traj exactly as released, and a
scale-free form.

:func:`shape_score` takes a :class:`PathPair`: both paths relative to frame 0 and including it (the origin, identity
rotation), in frame 0's camera axes (OpenCV: x right, y down, z forward), rotations ``X_k = R X_0 + t``. The release's
functions take camera-to-world pose sequences (F, 4, 4), as its code does. The estimated centres have the video's own
unit (a monocular video has no metric scale), the intended ones the camera path's units.
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


# ------------------------------------------------------------------------------------- World-R1's S_traj, as released
def _geodesic_deg(rotations_a: torch.Tensor, rotations_b: torch.Tensor) -> torch.Tensor:
    """Geodesic angles (N,) in degrees between corresponding rotations (N, 3, 3)."""
    return rotation_angle_deg(rotations_a @ rotations_b.transpose(1, 2))


def _sim3(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Umeyama similarity ``target ~ s R source + t`` of camera centres (N, 3), with rotation and scale."""
    return umeyama(source, target, rotation=True, scale=True)


def _spread(centres: torch.Tensor) -> bool:
    """Whether camera centres (N, 3) are spread enough for a similarity (Umeyama divides by their variance)."""
    size = float(centres.abs().max()) if len(centres) else 0.0
    return size > 0 and float((centres - centres.mean(0)).square().sum(1).mean()) > 1e-20 * size**2


def release_align(predicted: torch.Tensor, target: torch.Tensor, seed: int = 0, iterations: int = 10) -> torch.Tensor:
    """``predicted`` camera-to-world poses (F, 4, 4) mapped onto ``target``'s by the release's Umeyama similarity of
    the camera centres: on all poses, or, from 6 poses on, by its RANSAC: 10 draws of ``max(3, ceil(F / 2))`` poses
    (seeded here, so a video always scores the same), inliers within the median distance from each aligned centre to
    its nearest target centre after an alignment on all poses, the draw with the most inliers (then the smallest mean
    error) refitted on its inliers. Centres that coincide (a camera that only turned during those poses) have no
    similarity: the release's Umeyama divides by their spread (NaN), so such a draw finds no inliers and such inliers
    are not refitted (the draw's own similarity stays). Rotations are turned by the similarity's rotation, centres
    moved by all of it."""
    predicted, target = predicted.double(), target.double()
    centres_p, centres_t = predicted[:, :3, 3], target[:, :3, 3]
    count = len(predicted)
    s, r, t = _sim3(centres_p, centres_t)
    if count >= 6:
        aligned = s * centres_p @ r.T + t
        threshold = float(torch.cdist(aligned, centres_t).amin(1).median())
        generator = torch.Generator().manual_seed(seed)
        size = max(3, (count + 1) // 2)
        best, best_score = None, (-1, math.inf)
        for _ in range(iterations):
            sample = torch.randperm(count, generator=generator)[:size]
            if not _spread(centres_p[sample]):  # the release's Umeyama divides by the spread: NaN, no inliers
                continue
            sd, rd, td = _sim3(centres_p[sample], centres_t[sample])
            errors = (sd * centres_p @ rd.T + td - centres_t).norm(dim=1)
            inliers = errors <= threshold
            k = int(inliers.sum())
            mean = float(errors[inliers].mean()) if k else math.inf
            if k > best_score[0] or (k == best_score[0] and mean < best_score[1]):
                best, best_score, (s, r, t) = inliers, (k, mean), (sd, rd, td)
        if best is not None and int(best.sum()) >= 3 and _spread(centres_p[best]):
            s, r, t = _sim3(centres_p[best], centres_t[best])
    out = predicted.clone()
    out[:, :3, :3] = r @ predicted[:, :3, :3]
    out[:, :3, 3] = s * centres_p @ r.T + t
    return out


def relative_to_first(poses: torch.Tensor) -> torch.Tensor:
    """Camera-to-world poses (F, 4, 4) re-expressed in the first camera's frame (the first becomes the identity)."""
    poses = poses.double()
    return torch.linalg.inv(poses[:1]) @ poses


def release_score(predicted: torch.Tensor, target: torch.Tensor, steps: int | None = None) -> dict[str, float]:
    """World-R1's S_traj of two camera-to-world pose sequences (F, 4, 4), already aligned and relative to their first
    pose, clipped to [0, 1], with its parts (the release's formula, term by term).

    With centres ``C``, path length ``L = sum |C_{i+1} - C_i|`` and total turning ``A`` (the sum of the geodesic angles
    between consecutive rotations, degrees):

    - travel ``T``: ``exp(-L_pred / 3)`` where the target does not travel (``L_gt < 1e-4``); else
      ``0.4 (1 + cos) / 2 + 0.3 exp(-|ln((L_pred + 1e-6) / (L_gt + 1e-6))|) + 0.3 exp(-e / (2 max(L_gt / steps, 1)))``
      with ``cos`` the cosine between the flattened centre sequences (1 if both are ~0, 0 if one is) and ``e`` the
      mean distance between matching centres;
    - turning ``Q``: ``exp(-A_pred / 5)`` where the target does not turn (``A_gt < 1e-3``); else
      ``0.5 exp(-mean error / 6) + 0.3 exp(-last error / 6) + 0.2 exp(-|ln((A_pred + 1e-6) / (A_gt + 1e-6))|)`` with
      the geodesic errors of matching rotations in degrees;
    - ``score``: ``T Q`` if the target neither travels nor turns, ``0.2 T + 0.8 Q`` if it only turns, ``0.8 T + 0.2 Q``
      if it only travels, ``0.5 (T + Q)`` if both.

    ``steps``: the pose steps the error tolerance divides the target's length by; the release scores all frames
    (``F - 1``, the default), so a path scored on fewer poses passes the video's ``frames - 1`` to keep its tolerance.
    """
    if predicted.shape != target.shape or predicted.shape[-2:] != (4, 4):
        raise ValueError(f"predicted and target must be (F, 4, 4) alike, got {tuple(predicted.shape)}, {target.shape}")
    predicted, target = predicted.double(), target.double()
    count = len(target)
    steps = max(count - 1, 1) if steps is None else steps
    centres_p, centres_t = predicted[:, :3, 3], target[:, :3, 3]
    length_p = float((centres_p[1:] - centres_p[:-1]).norm(dim=1).sum())
    length_t = float((centres_t[1:] - centres_t[:-1]).norm(dim=1).sum())
    turning_p = float(_geodesic_deg(predicted[1:, :3, :3], predicted[:-1, :3, :3]).sum()) if count > 1 else 0.0
    turning_t = float(_geodesic_deg(target[1:, :3, :3], target[:-1, :3, :3]).sum()) if count > 1 else 0.0
    travels, turns = length_t >= 1e-4, turning_t >= 1e-3
    norm_p, norm_t = float(centres_p.norm()), float(centres_t.norm())
    if norm_p < 1e-8 and norm_t < 1e-8:
        cosine = 1.0
    elif norm_p < 1e-8 or norm_t < 1e-8:
        cosine = 0.0
    else:
        cosine = float((centres_p * centres_t).sum()) / (norm_p * norm_t)
    error = float((centres_p - centres_t).norm(dim=1).mean())
    if travels:
        ratio = abs(math.log((length_p + 1e-6) / (length_t + 1e-6)))
        tolerance = 2 * max(length_t / steps, 1.0)
        travel = 0.4 * (1 + cosine) / 2 + 0.3 * math.exp(-ratio) + 0.3 * math.exp(-error / tolerance)
    else:
        travel = math.exp(-length_p / 3)
    errors = _geodesic_deg(predicted[:, :3, :3], target[:, :3, :3])
    if turns:
        extent = math.exp(-abs(math.log((turning_p + 1e-6) / (turning_t + 1e-6))))
        turn = 0.5 * math.exp(-float(errors.mean()) / 6) + 0.3 * math.exp(-float(errors[-1]) / 6) + 0.2 * extent
    else:
        turn = math.exp(-turning_p / 5)
    if travels and turns:
        score = 0.5 * (travel + turn)
    elif turns:
        score = 0.2 * travel + 0.8 * turn
    elif travels:
        score = 0.8 * travel + 0.2 * turn
    else:
        score = travel * turn
    return {
        "score": min(1.0, max(0.0, score)),
        "translation": travel,
        "rotation": turn,
        "direction": cosine,
        "length_ratio": (length_p + 1e-6) / (length_t + 1e-6),
        "path_error": error,
        "turning_deg": turning_p,
        "rotation_error_deg": float(errors.mean()),
        "final_rotation_error_deg": float(errors[-1]),
    }


def release_trajectory_score(
    predicted: torch.Tensor, target: torch.Tensor, has_camera: bool = True, steps: int | None = None, seed: int = 0
) -> dict[str, float]:
    """S_traj as the release computes it from raw camera-to-world paths (F, 4, 4): 0 for a prompt without camera
    words; else the prediction aligned onto the target (:func:`release_align`) where the target travels, both made
    relative to their first pose, and :func:`release_score`."""
    if not has_camera:
        return dict.fromkeys(("score", "translation", "rotation"), 0.0)
    target = target.double()
    length = float((target[1:, :3, 3] - target[:-1, :3, 3]).norm(dim=1).sum())
    if length >= 1e-4:
        predicted = release_align(predicted, target, seed)
    return release_score(relative_to_first(predicted), relative_to_first(target), steps)
