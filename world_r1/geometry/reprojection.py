"""Render-and-compare for frame pairs: two-view reconstruction, re-rendering a frame from another, agreement scores.

Conventions: pixel coordinates (x, y) with integer values at pixel centres (Kornia's); relative pose ``X_j = R X_i + t``
with ``|t| = 1``, so depths are in units of the camera baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from kornia.filters import gaussian_blur2d
from kornia.geometry.depth import depth_to_3d_v2, warp_frame_depth
from kornia.geometry.epipolar import sampson_epipolar_distance
from kornia.geometry.homography import find_homography_dlt_iterated
from kornia.geometry.transform import warp_perspective
from kornia.metrics import ssim

from world_r1.geometry.depth import DepthSource
from world_r1.geometry.pose import relative_pose, triangulate
from world_r1.geometry.video import VideoGeometry


@dataclass
class PairReconstruction:
    """Relative pose of frame j to frame i (``rotation`` (3, 3), unit ``translation`` (3,)) and the M triangulated
    inlier matches: pixels ``points_i``/``points_j`` (M, 2) and their depths ``depth_i``/``depth_j`` (M,) > 0."""

    rotation: torch.Tensor
    translation: torch.Tensor
    points_i: torch.Tensor
    points_j: torch.Tensor
    depth_i: torch.Tensor
    depth_j: torch.Tensor


def reconstruct_pair(
    fundamental: torch.Tensor,
    intrinsics: torch.Tensor,
    points_i: torch.Tensor,
    points_j: torch.Tensor,
    inlier_px: float = 1.0,
    min_points: int = 8,
) -> PairReconstruction | None:
    """Pose from the essential matrix and depths of the matches that obey ``fundamental`` (3, 3) within ``inlier_px``
    (Sampson distance, pixels) and triangulate in front of both cameras.

    Args:
        fundamental: (3, 3), ``x_j^T F x_i = 0``.
        intrinsics: (3, 3), both frames.
        points_i, points_j: (M, 2) matched pixels.
        inlier_px: Sampson distance under which a match is used.
        min_points: fewer usable points give None (degenerate pair), as do non-finite results.
    """
    points_i, points_j = points_i.double(), points_j.double()
    fundamental, intrinsics = fundamental.double(), intrinsics.double().to(points_i.device)
    error = sampson_epipolar_distance(points_i[None], points_j[None], fundamental[None], squared=False)[0]
    inlier = torch.nan_to_num(error, nan=float("inf")) < inlier_px
    if int(inlier.sum()) < min_points:
        return None
    points_i, points_j = points_i[inlier], points_j[inlier]
    rotation, translation = relative_pose(fundamental, intrinsics, points_i, points_j)
    world_i = triangulate(intrinsics, rotation, translation, points_i, points_j)
    world_j = world_i @ rotation.T + translation
    keep = torch.isfinite(world_i).all(1) & (world_i[:, 2] > 1e-6) & (world_j[:, 2] > 1e-6)
    if int(keep.sum()) < min_points or not (torch.isfinite(rotation).all() and torch.isfinite(translation).all()):
        return None
    return PairReconstruction(
        rotation.float(),
        translation.float(),
        points_i[keep].float(),
        points_j[keep].float(),
        world_i[keep, 2].float(),
        world_j[keep, 2].float(),
    )


def reconstruct_pairs(
    analysis: VideoGeometry, intrinsics: torch.Tensor, min_points: int = 8, index: list[int] | None = None
) -> dict[int, PairReconstruction]:
    """:func:`reconstruct_pair` of the analysis's pairs at flat indices ``index`` (``b * P + p``; default: every pair
    with a valid fundamental matrix), inliers within the analysis's RANSAC threshold; pairs that fail are left out."""
    geometry = analysis.geometry
    if index is None:
        index = [k for k in range(len(geometry.valid)) if bool(geometry.valid[k])]
    reconstructions = {}
    for k in index:
        points_i, points_j = analysis.matches.of_pair(k)
        try:
            rec = reconstruct_pair(
                geometry.fundamental[k], intrinsics, points_i, points_j, analysis.settings.ransac_px, min_points
            )
        except Exception:  # Kornia's pose/triangulation can fail on degenerate (e.g. motionless) geometry
            rec = None
        if rec is not None:
            reconstructions[k] = rec
    return reconstructions


def densify(
    source: DepthSource, image_i: torch.Tensor, image_j: torch.Tensor, reconstructions: list[PairReconstruction]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense depth maps (N, 1, H, W) of frames ``image_i`` and ``image_j`` (N, 3, H, W) of N reconstructed pairs, from
    ``source`` anchored at each pair's triangulated matches (non-finite or negative values become 0: no depth), and
    the pairs' rotations (N, 3, 3) and translations (N, 3) on the images' device. Raises ``ValueError`` where the
    source has too few anchors."""
    anchors = [r.points_i for r in reconstructions] + [r.points_j for r in reconstructions]
    anchor_depths = [r.depth_i for r in reconstructions] + [r.depth_j for r in reconstructions]
    depth = source(torch.cat([image_i, image_j]), anchors, anchor_depths)
    depth = torch.nan_to_num(depth.float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    rotation = torch.stack([r.rotation for r in reconstructions]).to(image_i.device)
    translation = torch.stack([r.translation for r in reconstructions]).to(image_i.device)
    n = len(reconstructions)
    return depth[:n], depth[n:], rotation, translation


@dataclass
class Reprojection:
    """Frame j re-rendered from frame i, all (N, ...) over N pairs: ``image`` (N, 3, H, W), ``valid`` (N, 1, H, W)
    bool (pixels of j that land inside frame i with positive depth in both), ``predicted_depth`` (N, 1, H, W) the
    depth in camera i of frame j's points, ``sampled_depth`` (N, 1, H, W) frame i's depth map read where they land."""

    image: torch.Tensor
    valid: torch.Tensor
    predicted_depth: torch.Tensor
    sampled_depth: torch.Tensor


def reproject(
    image_i: torch.Tensor,
    depth_i: torch.Tensor,
    depth_j: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    intrinsics: torch.Tensor,
) -> Reprojection:
    """Re-render frames j from frames i with ``kornia.geometry.depth.warp_frame_depth`` (batched over N pairs).

    Args:
        image_i: (N, 3, H, W) source frames.
        depth_i, depth_j: (N, 1, H, W) positive depths of frames i and j (same scale as ``translation``).
        rotation, translation: (N, 3, 3), (N, 3) with ``X_j = R X_i + t``.
        intrinsics: (3, 3) or (N, 3, 3).
    """
    n = len(image_i)
    intrinsics = intrinsics.to(image_i).expand(n, 3, 3)
    i_from_j = torch.eye(4, dtype=image_i.dtype, device=image_i.device).repeat(n, 1, 1)
    rotation_t = rotation.to(image_i).transpose(1, 2)
    i_from_j[:, :3, :3] = rotation_t
    i_from_j[:, :3, 3] = -(rotation_t @ translation.to(image_i)[..., None])[..., 0]
    stacked = torch.cat([image_i, torch.ones_like(depth_i), depth_i], 1)
    warped = warp_frame_depth(stacked, depth_j, i_from_j, intrinsics)
    points_j = depth_to_3d_v2(depth_j[:, 0], intrinsics)  # (N, H, W, 3)
    predicted = torch.einsum("nij,nhwj->nhwi", rotation_t, points_j - translation.to(image_i)[:, None, None])[..., 2]
    predicted = predicted[:, None]
    sampled = warped[:, 4:5]
    valid = (warped[:, 3:4] > 0.999) & (predicted > 1e-6) & (sampled > 1e-6) & (depth_j > 0)
    return Reprojection(warped[:, :3], valid, predicted, sampled)


def fit_homographies(
    points_i: list[torch.Tensor], points_j: list[torch.Tensor], soft_px: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The homography (N, 3, 3) float64 that best maps each pair's matches ``points_i[n] -> points_j[n]`` (M_n, 2)
    (iteratively reweighted DLT, ``soft_px`` its inlier scale) and whether it is usable (N,) bool: pairs with fewer
    than 4 matches or no finite fit get the identity and False."""
    device = points_i[0].device if points_i else "cpu"
    eye = torch.eye(3, dtype=torch.float64, device=device)
    homographies, usable = [], []
    for a, b in zip(points_i, points_j, strict=True):  # one pair at a time: the reweighting would revive padding
        fit = eye
        if len(a) >= 4:
            weights = torch.ones(1, len(a), dtype=torch.float64, device=a.device)
            fit = find_homography_dlt_iterated(a[None].double(), b[None].double(), weights, soft_px)[0]
        ok = len(a) >= 4 and bool(torch.isfinite(fit).all())
        homographies.append(fit if ok else eye)
        usable.append(ok)
    if not homographies:
        return torch.zeros(0, 3, 3, dtype=torch.float64), torch.zeros(0, dtype=torch.bool)
    return torch.stack(homographies), torch.tensor(usable, dtype=torch.bool, device=device)


def homography_prediction(
    image_i: torch.Tensor, points_i: list[torch.Tensor], points_j: list[torch.Tensor], soft_px: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames j predicted from frames i (N, 3, H, W) by each pair's :func:`fit_homographies` homography, and the mask
    (N, 1, H, W) of predicted pixels that land inside frame i.

    A homography is the rigid explanation of a rotating or zooming camera, and of a distant or planar scene; pairs
    with fewer than 4 matches or no finite homography get an empty mask.
    """
    height, width = image_i.shape[-2:]
    homography, usable = fit_homographies(points_i, points_j, soft_px)
    homography, usable = homography.to(image_i), usable.to(image_i.device)
    stacked = torch.cat([image_i, torch.ones_like(image_i[:, :1])], 1)
    warped = warp_perspective(stacked, homography, (height, width), align_corners=True)
    valid = (warped[:, 3:] > 0.999) & usable[:, None, None, None]
    return warped[:, :3], valid


def photometric_agreement(
    rendered: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, window: int = 7, max_psnr: float = 60.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """PSNR (dB) and mean SSIM over valid pixels, each (N,), for images (N, 3, H, W) in [0, 1] and ``valid``
    (N, 1, H, W). Invalid pixels are filled with the target before SSIM so the mask's edge adds no structure.
    Pairs with no valid pixel get PSNR 0 and SSIM 0; PSNR is capped at ``max_psnr`` (identical images)."""
    mask = valid.to(rendered.dtype)
    count = mask.sum((1, 2, 3))
    mse = ((rendered - target).square() * mask).sum((1, 2, 3)) / (3 * count).clamp_min(1)
    psnr = (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-max_psnr / 10)))).clamp(0, max_psnr)
    filled = torch.where(valid, rendered, target)
    ssim_map = ssim(filled, target, window).mean(1, keepdim=True)
    mean_ssim = (ssim_map * mask).sum((1, 2, 3)) / count.clamp_min(1)
    has = count > 0
    return torch.where(has, psnr, torch.zeros_like(psnr)), torch.where(has, mean_ssim, torch.zeros_like(mean_ssim))


def explained_error(
    rendered: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    sigma: float = 1.0,
    min_mse: float = 1e-6,
) -> torch.Tensor:
    """How much of the change from ``source`` to ``target`` the re-rendering explains, (N,) in [0, 1]:
    ``1 - mse(rendered, target) / mse(source, target)`` over the ``valid`` pixels (N, 1, H, W).

    Copying the source frame is the motion-matched baseline: a rigid scene re-rendered through the right depth and pose
    explains nearly all of the change however far the camera moved, a morphing one only its rigid part, and blur or
    slow motion lower both errors alike. All three images are compared after a Gaussian blur of ``sigma`` pixels
    (normalised inside the mask), so the sub-pixel smoothing of resampling neither costs the re-rendering nor pays a
    blurry video. Pairs whose frames barely differ (baseline error under ``min_mse``) or have no valid pixel score 0.
    """
    mask = valid.to(rendered.dtype)
    if sigma > 0:
        size = 2 * math.ceil(2 * sigma) + 1
        blur = lambda x: gaussian_blur2d(x, (size, size), (sigma, sigma), border_type="replicate")  # noqa: E731
        weight = blur(mask)
        rendered, source, target = (blur(x * mask) / weight.clamp_min(1e-6) for x in (rendered, source, target))
        mask = (weight > 0.999).to(mask.dtype)  # pixels whose whole neighbourhood is valid
    count = (3 * mask.sum((1, 2, 3))).clamp_min(1)
    error = ((rendered - target).square() * mask).sum((1, 2, 3)) / count
    baseline = ((source - target).square() * mask).sum((1, 2, 3)) / count
    explained = (1 - error / baseline.clamp_min(min_mse)).clamp(0, 1)
    return torch.where(baseline > min_mse, explained, torch.zeros_like(explained))


def depth_agreement(
    predicted: torch.Tensor, sampled: torch.Tensor, valid: torch.Tensor, tolerance: float = 1.1
) -> torch.Tensor:
    """Share (N,) of valid pixels whose depths agree within a factor ``tolerance`` after aligning their scales.

    ``predicted`` (N, 1, H, W) is where frame j's depth puts each point in camera i, ``sampled`` what frame i's own
    depth says there. The scale is aligned by the median ratio (robust to a global scale error of either map),
    then the threshold accuracy ``max(a / b, b / a) < tolerance`` (Eigen et al.) is averaged. No valid pixel: 0.
    """
    out = predicted.new_zeros(len(predicted))
    for k in range(len(predicted)):
        a, b = predicted[k][valid[k]], sampled[k][valid[k]]
        if len(a) == 0:
            continue
        ratio = torch.log(b) - torch.log(a)
        ratio = ratio - ratio.median()
        out[k] = (ratio.abs() < torch.log(torch.tensor(tolerance))).float().mean()
    return out
