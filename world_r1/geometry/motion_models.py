"""Which camera motion explains a frame pair: still, turning, travelling, or both, chosen by Torr's GRIC.

A pair's matches can usually be explained by several motions. The general two-view model (a fundamental matrix) fits
any of them, so reading every pair through it finds turning in a push-in and travel in a pan: the essential matrix
of a pure rotation has no defined translation, and that of a forward motion trades rotation against translation
under an assumed lens. Torr's Geometric Robust Information Criterion (GRIC, 1998) compares models of different
dimension and parameter count on the same matches and takes the simplest that explains them:

``GRIC = sum_i min(e_i^2 / sigma^2, 2 (4 - d)) + ln(4) d n + ln(4 n) k``

with ``e_i`` each match's geometric error under the model, ``d`` the dimension of the model's manifold in the 4D space
of a match (2 for a homography-type model, 3 for an epipolar one), ``k`` its parameters and ``n`` the matches. The
models (all with the assumed intrinsics ``K``):

* ``still``: the identity (d 2, k 0);
* ``rotation``: the camera turns about its centre, ``x_b ~ K R K^-1 x_a`` (d 2, k 3): pans, tilts, rolls;
* ``translation``: the camera travels without turning, ``E = [t]_x`` (d 3, k 2): push in, pull out, move;
* ``general``: the pair's fundamental matrix from the analysis (d 3, k 7): anything, orbits included.

Errors are in pixels: the transfer error over root 2 for the homography-type models (noise in both images), the
Sampson distance for the epipolar ones. ``sigma`` is the noise of the general model's inliers (robust, at least
``min_sigma_px``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from kornia.geometry.epipolar import cross_product_matrix, sampson_epipolar_distance

from world_r1.geometry.pose import relative_pose

#: the models, simplest first; (manifold dimension d, parameters k)
MODELS: dict[str, tuple[int, int]] = {"still": (2, 0), "rotation": (2, 3), "translation": (3, 2), "general": (3, 7)}


@dataclass
class PairMotion:
    """The motion chosen for a pair: ``kind`` of :data:`MODELS`, ``rotation`` (3, 3) and unit ``translation`` (3,)
    (zeros for still and rotation) with ``X_b = R X_a + t``, the ``inliers`` (M,) bool of its fit, and every model's
    GRIC (lower is better)."""

    kind: str
    rotation: torch.Tensor
    translation: torch.Tensor
    inliers: torch.Tensor
    gric: dict[str, float]


def bearings(points: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Normalised image coordinates (M, 3) ``K^-1 [x, y, 1]`` of pixels (M, 2), float64."""
    ones = torch.ones_like(points[:, :1])
    return torch.cat([points, ones], 1).double() @ torch.linalg.inv(intrinsics.double()).T


def rotation_transfer_px(
    rotation: torch.Tensor, rays_a: torch.Tensor, points_b: torch.Tensor, intrinsics: torch.Tensor
) -> torch.Tensor:
    """Pixel distances (..., M) between ``points_b`` and ``rays_a`` turned by ``rotation`` (..., 3, 3) and projected
    (infinite for rays turned behind the camera)."""
    turned = rays_a @ rotation.transpose(-1, -2)  # (..., M, 3)
    projected = turned @ intrinsics.double().T
    z = projected[..., 2:]
    pixels = projected[..., :2] / z.clamp_min(1e-12)
    error = (pixels - points_b.double()).norm(dim=-1)
    return torch.where(z[..., 0] > 1e-9, error, torch.full_like(error, math.inf))


def _kabsch(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rotations (..., 3, 3) best turning unit vectors ``source`` onto ``target`` (..., M, 3)."""
    covariance = source.transpose(-1, -2) @ target  # sum a b^T
    u, _, vh = torch.linalg.svd(covariance)
    d = torch.sign(torch.linalg.det(vh.transpose(-1, -2) @ u.transpose(-1, -2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return vh.transpose(-1, -2) @ fix @ u.transpose(-1, -2)


def fit_rotation(
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    intrinsics: torch.Tensor,
    threshold_px: float,
    iterations: int = 128,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera rotation (3, 3) best explaining the matches as a turn about the camera's centre (RANSAC over
    2-match samples, refitted on the inliers) and its transfer errors (M,) in pixels."""
    rays_a = bearings(points_a, intrinsics)
    unit_a = rays_a / rays_a.norm(dim=1, keepdim=True)
    rays_b = bearings(points_b, intrinsics)
    unit_b = rays_b / rays_b.norm(dim=1, keepdim=True)
    samples = torch.randint(0, len(points_a), (iterations, 2), generator=generator)
    candidates = _kabsch(unit_a[samples], unit_b[samples])
    errors = rotation_transfer_px(candidates, rays_a, points_b, intrinsics)
    best = candidates[int((errors < threshold_px).sum(1).argmax())]
    for _ in range(2):
        inliers = rotation_transfer_px(best, rays_a, points_b, intrinsics) < threshold_px
        if int(inliers.sum()) >= 2:
            best = _kabsch(unit_a[inliers], unit_b[inliers])
    return best, rotation_transfer_px(best, rays_a, points_b, intrinsics)


def sampson_px(
    rotation: torch.Tensor,
    translation: torch.Tensor,
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    intrinsics: torch.Tensor,
) -> torch.Tensor:
    """Sampson distances (..., M) in pixels of the matches to the epipolar geometry of ``(R, t)`` (..., 3, 3), (..., 3)
    under ``K``: ``F = K^-T [t]_x R K^-1``."""
    inverse = torch.linalg.inv(intrinsics.double())
    fundamental = inverse.T @ cross_product_matrix(translation.double()) @ rotation.double() @ inverse
    batch = fundamental.reshape(-1, 3, 3)
    a = points_a.double()[None].expand(len(batch), -1, -1)
    b = points_b.double()[None].expand(len(batch), -1, -1)
    distance = sampson_epipolar_distance(a, b, batch, squared=False)
    return distance.reshape(*fundamental.shape[:-2], len(points_a))


def fit_translation(
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    intrinsics: torch.Tensor,
    threshold_px: float,
    iterations: int = 128,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit translation (3,) best explaining the matches as travel without turning (``E = [t]_x``: every match's
    plane ``x_a x x_b`` contains ``t``; RANSAC over 2-match samples, refitted by least squares on the inliers, the sign
    that puts most points in front of both cameras) and its Sampson errors (M,) in pixels."""
    normals = torch.linalg.cross(bearings(points_a, intrinsics), bearings(points_b, intrinsics))
    eye = torch.eye(3, dtype=torch.float64)
    samples = torch.randint(0, len(points_a), (iterations, 2), generator=generator)
    candidates = torch.linalg.cross(normals[samples[:, 0]], normals[samples[:, 1]])
    candidates = candidates / candidates.norm(dim=1, keepdim=True).clamp_min(1e-12)
    errors = sampson_px(eye.expand(iterations, 3, 3), candidates, points_a, points_b, intrinsics)
    best = candidates[int((torch.nan_to_num(errors, nan=math.inf) < threshold_px).sum(1).argmax())]
    for _ in range(2):
        inliers = torch.nan_to_num(sampson_px(eye, best, points_a, points_b, intrinsics), nan=math.inf) < threshold_px
        if int(inliers.sum()) >= 2:
            best = torch.linalg.svd(normals[inliers])[2][-1]
    if _in_front(eye, best, points_a, points_b, intrinsics) < 0.5:
        best = -best
    return best, torch.nan_to_num(sampson_px(eye, best, points_a, points_b, intrinsics), nan=math.inf)


def _in_front(
    rotation: torch.Tensor,
    translation: torch.Tensor,
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    intrinsics: torch.Tensor,
) -> float:
    """Share of matches whose depths in both cameras solve ``Z_b x_b = Z_a R x_a + t`` with both positive."""
    rays_a = bearings(points_a, intrinsics) @ rotation.double().T
    rays_b = bearings(points_b, intrinsics)
    system = torch.stack([rays_a, -rays_b], -1)  # (M, 3, 2) [Z_a, Z_b] = -t
    depths = torch.linalg.lstsq(system, -translation.double().expand(len(rays_a), 3)[..., None]).solution[..., 0]
    return float(((depths[:, 0] > 0) & (depths[:, 1] > 0)).double().mean())


def gric(errors_px: torch.Tensor, sigma_px: float, kind: str) -> float:
    """Torr's GRIC of a model of :data:`MODELS` with per-match geometric errors (M,) in pixels (module docstring)."""
    dimension, parameters = MODELS[kind]
    n = len(errors_px)
    residual = (torch.nan_to_num(errors_px.double(), nan=math.inf) / sigma_px).square()
    robust = residual.clamp_max(2.0 * (4 - dimension)).sum()
    return float(robust) + math.log(4) * dimension * n + math.log(4 * n) * parameters


def select_motion(
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    fundamental: torch.Tensor | None,
    intrinsics: torch.Tensor,
    threshold_px: float = 1.0,
    min_sigma_px: float = 0.25,
    generator: torch.Generator | None = None,
) -> PairMotion | None:
    """The motion of :data:`MODELS` with the lowest GRIC on a pair's matches (M, 2) in pixels, or None with fewer
    than 8 matches. ``fundamental`` is the pair's general model (None: not estimated, so only the three simpler ones
    compete); ``threshold_px`` the inlier threshold of the fits."""
    if len(points_a) < 8:
        return None
    points_a, points_b, k = points_a.double().cpu(), points_b.double().cpu(), intrinsics.double().cpu()
    eye, zero = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    rays_a = bearings(points_a, k)
    candidates: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {
        "still": (eye, zero, rotation_transfer_px(eye, rays_a, points_b, k) / math.sqrt(2))
    }
    rotation, errors = fit_rotation(points_a, points_b, k, threshold_px, generator=generator)
    candidates["rotation"] = (rotation, zero, errors / math.sqrt(2))
    translation, errors = fit_translation(points_a, points_b, k, threshold_px, generator=generator)
    candidates["translation"] = (eye, translation, errors)
    sigma = min_sigma_px
    if fundamental is not None and bool(torch.isfinite(fundamental).all()):
        general = fundamental.double().cpu()[None]
        errors = sampson_epipolar_distance(points_a[None], points_b[None], general, squared=False)[0]
        errors = torch.nan_to_num(errors, nan=math.inf)
        inliers = errors < threshold_px
        if int(inliers.sum()) >= 8:
            sigma = max(min_sigma_px, float(errors[inliers].median()) / 0.6745)
            try:
                r, t = relative_pose(general[0], k, points_a[inliers], points_b[inliers])
                candidates["general"] = (r.double(), t.double(), errors)
            except Exception:  # Kornia's decomposition can fail on a degenerate matrix: the simpler models compete
                pass
    scores = {kind: gric(errors, sigma, kind) for kind, (_, _, errors) in candidates.items()}
    kind = min(scores, key=scores.get)
    rotation, translation, errors = candidates[kind]
    limit = threshold_px if MODELS[kind][0] == 3 else threshold_px / math.sqrt(2)  # transfer errors were halved
    return PairMotion(kind, rotation, translation, errors < limit, scores)
