"""The camera path of a video relative to its first frame, and the Umeyama alignment of two paths.

Each analysed pair ``(0, k)`` gives camera k's pose relative to camera 0: where nine in ten of the pair's matches
(mismatches aside) obey one homography (a camera that only turns, or zooms; or travel too small to show parallax),
the rotation and zoom of that homography and no travel; otherwise the rotation and translation direction of the
essential matrix, with the travel's length from the depths the pairs give the frame-0 keypoints they share. A
monocular video has no metric scale; the unit is the median depth of the reference anchor's points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world_r1.geometry.reprojection import fit_homographies, reconstruct_pair
from world_r1.geometry.video import VideoGeometry

#: matches off the homography by more than this many ``homography_px`` and off the epipolar geometry: mismatches
GROSS = 4.0


@dataclass
class CameraPath:
    """Cameras of ``frames`` (M,) relative to frame 0: ``rotations`` (M, 3, 3) with ``X_k = R X_0 + t`` (OpenCV
    axes), ``centres`` (M, 3) in frame 0's camera coordinates (unit: the median depth of the reference anchor's
    frame-0 points, see :func:`_common_scale`),
    ``known`` (M,) bool (False: the pair could not be reconstructed; its rotation is the identity, its centre 0) and
    ``rotation_only`` (M,) bool (the pair's matches obey a homography: turning or zooming, no travel), ``zooms``
    (M,) (camera k's focal length over camera 0's, read from the homography of a rotation-only pair; 1 elsewhere:
    a travelling pair's zoom is not estimated), the ``focal`` length (analysis pixels) the path was read with, and
    whether it was ``chained`` from consecutive keyframes (``rotation_only`` then marks the steps that only turned)."""

    frames: torch.Tensor
    rotations: torch.Tensor
    centres: torch.Tensor
    known: torch.Tensor
    rotation_only: torch.Tensor
    focal: float
    zooms: torch.Tensor | None = None
    chained: bool = False  # read step by step (:mod:`world_r1.geometry.chain`) rather than each against frame 0

    def __post_init__(self) -> None:
        if self.zooms is None:
            self.zooms = torch.ones(len(self.frames), dtype=torch.float64)

    @property
    def measured(self) -> torch.Tensor:
        """(M,) bool, the anchors to compare: every known one for a camera that only turns or zooms; where some
        anchor shows travel, the rotation-only ones are those whose travel was too small to see (early frames of a
        slow truck, read as a slight turn), and are left out. A chained path compares every known keyframe: its
        turning steps are part of the path."""
        if self.chained:
            return self.known
        travels = self.known & ~self.rotation_only
        return travels if bool(travels.any()) else self.known


def nearest_rotation(matrix: torch.Tensor) -> torch.Tensor:
    """The rotation (3, 3) closest to ``matrix`` in the Frobenius norm (SVD, determinant +1)."""
    u, _, vh = torch.linalg.svd(matrix)
    sign = torch.sign(torch.linalg.det(u @ vh))
    return u @ torch.diag(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign])) @ vh


def homography_motion(homography: torch.Tensor, intrinsics: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The rotation (3, 3) and zoom (focal-length ratio) of a camera that turns and zooms about a fixed centre, from
    its pixel homography: ``H ~ K Z R K^-1`` with ``Z = diag(z, z, 1)``.

    ``M = K^-1 H K ~ Z R`` has rows ``z r_0, z r_1, r_2`` of unit rows ``r``, so ``z`` is the ratio of the first two
    rows' norm to the third's; that ratio moves only to second order in the angle when ``K`` is assumed wrong (a
    45-degree lens read as 60 gives 1.4 % of zoom for a 10-degree pan), where the singular values of ``M`` move to
    first order. ``R`` is the rotation nearest ``Z^-1 M``."""
    k = intrinsics.to(homography)
    normalised = torch.linalg.inv(k) @ homography @ k
    normalised = normalised * torch.sign(torch.linalg.det(normalised))  # H's overall sign is arbitrary
    rows = normalised.norm(dim=1)
    zoom = float(rows[:2].square().mean().sqrt() / rows[2].clamp_min(1e-12))
    unzoomed = torch.diag(normalised.new_tensor([1 / zoom, 1 / zoom, 1.0])) @ normalised
    return nearest_rotation(unzoomed), zoom


def transfer_error(homography: torch.Tensor, points_i: torch.Tensor, points_j: torch.Tensor) -> torch.Tensor:
    """Pixel distances (M,) between ``points_j`` and ``points_i`` mapped through ``homography`` (3, 3)."""
    ones = torch.ones_like(points_i[:, :1])
    mapped = torch.cat([points_i, ones], 1).to(homography) @ homography.T
    mapped = mapped[:, :2] / mapped[:, 2:].clamp_min(1e-12)
    return (mapped - points_j.to(mapped)).norm(dim=1)


def estimate_path(
    analysis: VideoGeometry,
    video: int,
    intrinsics: torch.Tensor,
    homography_px: float = 1.0,
    min_points: int = 12,
    estimate_focal: bool = False,
) -> CameraPath:
    """The path of video ``video`` of the analysis from its anchor pairs ``(0, k)`` (:attr:`VideoGeometry.anchored`,
    made where ``GeometrySettings.anchors`` > 0).

    Args:
        analysis: the batch's shared analysis.
        video: which video of the batch.
        intrinsics: (3, 3) assumed intrinsics at the analysis size.
        homography_px: a pair whose matches obey one homography within this transfer error (analysis pixels; 90th
            percentile, so the parallax of a minority of matches off the dominant plane counts; times the zoom
            where the view grows, which magnifies frame 0's localisation error) shows no measurable parallax:
            rotation and zoom only. Mismatches (off the homography by ``GROSS`` times this and off the pair's
            epipolar geometry: the 5-10 % SIFT makes under a turn or a zoom of a third) are left out of the test.
        min_points: triangulated matches a translating pair needs.
        estimate_focal: replace the assumed focal length by the one the anchors agree on best
            (:func:`estimate_focal_length`); the principal point stays at the centre.
    """
    anchored = analysis.anchored
    if anchored is None:
        raise ValueError("the analysis has no anchor pairs: make it with GeometrySettings(anchors=8) or more.")
    if anchored.settings.path_pairs != "first":
        raise ValueError("the anchored path reads pairs with frame 0: make the analysis with path_pairs='first'.")
    count = len(anchored.pairs)
    keys = [video * count + p for p in range(count)]
    matches = [anchored.matches.of_pair(k) for k in keys]
    homographies, usable = fit_homographies([m[0] for m in matches], [m[1] for m in matches])
    homographies = homographies.cpu()
    k_matrix = intrinsics.double().cpu()
    turning, travelling = [], []  # rows read through their homography / through their fundamental matrix
    for row, (key, (points_i, points_j)) in enumerate(zip(keys, matches, strict=True)):
        if len(points_i) < anchored.settings.min_matches:
            continue
        error = transfer_error(homographies[row], points_i.cpu(), points_j.cpu())
        if bool(anchored.geometry.valid[key]):  # mismatches obey neither model: leave them out
            epipolar = anchored.geometry.match_error_px[anchored.matches.pair == key].cpu()
            plausible = (epipolar < anchored.settings.ransac_px) | (error < GROSS * homography_px)
            error = error[plausible] if int(plausible.sum()) >= anchored.settings.min_matches else error
        # a zoom in by z magnifies frame 0's localisation error z times where the transfer error is measured
        zoom = min(max(1.0, homography_motion(homographies[row], k_matrix)[1]), GROSS)
        if bool(usable[row]) and float(error.quantile(0.9)) < homography_px * zoom:
            turning.append(row)
        elif bool(anchored.geometry.valid[key]):
            travelling.append(row)
    if estimate_focal:
        fundamentals = anchored.geometry.fundamental[[keys[row] for row in travelling]].double().cpu()
        k_matrix = estimate_focal_length(fundamentals, homographies[turning], k_matrix)
    rotations = torch.eye(3, dtype=torch.float64).repeat(count, 1, 1)
    centres = torch.zeros(count, 3, dtype=torch.float64)
    known = torch.zeros(count, dtype=torch.bool)
    rotation_only = torch.zeros(count, dtype=torch.bool)
    zooms = torch.ones(count, dtype=torch.float64)
    for row in turning:
        rotations[row], zooms[row] = homography_motion(homographies[row], k_matrix)
        known[row] = rotation_only[row] = True
    triangulated: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # row -> frame-0 pixels and depths
    for row in travelling:
        points_i, points_j = matches[row]
        fundamental = anchored.geometry.fundamental[keys[row]]
        try:
            rec = reconstruct_pair(
                fundamental, k_matrix.to(fundamental), points_i, points_j, anchored.settings.ransac_px, min_points
            )
        except Exception:  # Kornia's pose/triangulation can fail on degenerate geometry: the anchor stays unknown
            rec = None
        if rec is None:
            continue
        rotation, translation = rec.rotation.double().cpu(), rec.translation.double().cpu()
        rotations[row] = rotation
        centres[row] = -(rotation.T @ translation)  # unit length: the pair's own baseline, scaled below
        known[row] = True
        triangulated[row] = (rec.points_i.cpu(), rec.depth_i.double().cpu())
    if triangulated:
        centres = _common_scale(centres, triangulated)
    frames, focal = anchored.pairs[:, 1].cpu(), float(k_matrix[0, 0])
    return CameraPath(frames, rotations, centres, known, rotation_only, focal, zooms)


def estimate_focal_length(
    fundamentals: torch.Tensor,
    homographies: torch.Tensor,
    intrinsics: torch.Tensor,
    fov_range_deg: tuple[float, float] = (30.0, 110.0),
    steps: int = 81,
) -> torch.Tensor:
    """Intrinsics (3, 3) with the focal length that makes the anchors most self-consistent, searched over horizontal
    fields of view in ``fov_range_deg``; ``intrinsics`` unchanged without anchors to judge by.

    A travelling pair's essential matrix ``K^T F K`` has two equal singular values only for the right ``K``
    (Mendonca and Cipolla 1999); a turning pair's ``K^-1 H K`` is a rotation, three equal singular values, only for
    the right ``K``. The cost is the mean of ``(s1 - s2) / (s1 + s2)`` and ``(s1 - s3) / (s1 + s3)`` over them.
    A zooming pair's ``K^-1 H K`` is no rotation for any ``K`` (singular values ``z, z, 1``): zooms mislead it.
    """
    if len(fundamentals) + len(homographies) == 0:
        return intrinsics
    width = 2 * float(intrinsics[0, 2])
    fovs = torch.linspace(*fov_range_deg, steps, dtype=torch.float64)
    focals = 0.5 * width / torch.tan(torch.deg2rad(fovs) / 2)
    candidates = intrinsics.double().repeat(steps, 1, 1)
    candidates[:, 0, 0] = candidates[:, 1, 1] = focals
    cost = torch.zeros(steps, dtype=torch.float64)
    if len(fundamentals):
        essential = candidates.transpose(1, 2)[:, None] @ fundamentals[None] @ candidates[:, None]
        sigma = torch.linalg.svdvals(essential)
        cost += ((sigma[..., 0] - sigma[..., 1]) / (sigma[..., 0] + sigma[..., 1]).clamp_min(1e-12)).sum(1)
    if len(homographies):
        normalised = torch.linalg.inv(candidates)[:, None] @ homographies[None] @ candidates[:, None]
        sigma = torch.linalg.svdvals(normalised)
        cost += ((sigma[..., 0] - sigma[..., 2]) / (sigma[..., 0] + sigma[..., 2]).clamp_min(1e-12)).sum(1)
    return candidates[int(cost.argmin())]


def _common_scale(
    centres: torch.Tensor, triangulated: dict[int, tuple[torch.Tensor, torch.Tensor]], min_common: int = 5
) -> torch.Tensor:
    """Centres (M, 3) of unit baseline rescaled into one unit, the median depth of the reference anchor's frame-0
    points (the translating anchor with the most of them).

    Frame 0's keypoints are detected once, so anchors share them: the depths a point gets from two pairs differ by the
    ratio of the pairs' baselines, and the median of that ratio over the shared points (at least ``min_common``)
    puts every anchor in the reference's unit. An anchor sharing too few points falls back to its own median depth.
    """
    reference = max(triangulated, key=lambda row: len(triangulated[row][0]))
    points_ref, depth_ref = triangulated[reference]
    unit = depth_ref.median().clamp_min(1e-9)
    scaled = centres.clone()
    for row, (points, depth) in triangulated.items():
        baseline = shared_depth_ratio(points, depth, points_ref, depth_ref, min_common)  # this pair's, in ref's unit
        if baseline is None:
            baseline = unit / depth.median().clamp_min(1e-9)
        scaled[row] = centres[row] * baseline / unit
    return scaled


def shared_depth_ratio(
    points: torch.Tensor, depth: torch.Tensor, points_ref: torch.Tensor, depth_ref: torch.Tensor, min_common: int = 5
) -> torch.Tensor | None:
    """Median of ``depth_ref / depth`` over the keypoints (M, 2) two triangulations share in one frame (the same
    detected keypoint: equal pixel coordinates), or None with fewer than ``min_common`` of them.

    Keypoints are detected once per frame, so two pairs through a frame see the same ones there; the depths they give
    them differ by the ratio of the pairs' baselines, which this reads (one pair's baseline in the other's unit)."""
    same = (points[:, None] - points_ref[None]).abs().amax(-1) < 1e-3  # (N, N_ref)
    mine, theirs = same.nonzero(as_tuple=True)
    if len(mine) < min_common:
        return None
    return (depth_ref[theirs] / depth[mine].clamp_min(1e-9)).median()


def umeyama(
    source: torch.Tensor, target: torch.Tensor, rotation: bool = True, scale: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The similarity ``target ~ s R source + t`` minimising the squared error over N points (N, 3) (Umeyama 1991).

    ``rotation=False`` fixes ``R = I`` (both paths already share frame 0's axes; the scale is then at least 0, since a
    negative one would mirror the path) and ``scale=False`` fixes ``s = 1``.
    Returns ``s`` (), ``R`` (3, 3) and ``t`` (3,). Fewer than 2 points, or a source without spread, give the
    translation between the means with ``s = 1`` and ``R = I`` (``s = 0`` where a scale was asked for and the source
    has no spread).
    """
    source, target = source.double(), target.double()
    mean_s, mean_t = source.mean(0), target.mean(0)
    centred_s, centred_t = source - mean_s, target - mean_t
    variance = centred_s.square().sum(1).mean()
    eye = torch.eye(3, dtype=torch.float64)
    if len(source) < 2 or float(variance) < 1e-18:
        s = torch.tensor(0.0 if scale else 1.0, dtype=torch.float64)
        return s, eye, mean_t - s * mean_s
    covariance = centred_t.T @ centred_s / len(source)
    if rotation:
        u, singular, vh = torch.linalg.svd(covariance)
        d = torch.ones(3, dtype=torch.float64)
        if float(torch.linalg.det(u) * torch.linalg.det(vh)) < 0:
            d[2] = -1
        r = u @ torch.diag(d) @ vh
        s = (singular * d).sum() / variance if scale else torch.tensor(1.0, dtype=torch.float64)
    else:  # no rotation to absorb a reflection: a negative scale would mirror the path, so it stops at 0
        r = eye
        s = (torch.trace(covariance) / variance).clamp_min(0) if scale else torch.tensor(1.0, dtype=torch.float64)
    return s, r, mean_t - s * (r @ mean_s)
