"""Per-frame depth behind one interface: dense depth in the scale of sparse triangulated anchors.

Two-view geometry fixes depth only up to the (unknown) length of the camera translation; the reprojection reward
normalises that translation to 1, triangulates its matches in that scale, and asks a :class:`DepthSource` for a
dense depth map of each frame that agrees with those anchors. :class:`TriangulatedDepth` (weights-free, the
default) interpolates the anchors; ``ModelDepth`` (:mod:`world_r1.geometry.depth_model`) runs a learned depth model
and fits its affine-invariant output to them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DepthSource(nn.Module):
    """Dense depth of frames, in the scale of sparse anchors.

    ``forward(frames, points, depths) -> (N, 1, H, W)`` with ``frames`` (N, 3, H, W) in [0, 1], and per frame ``n``
    the anchors ``points[n]`` (M_n, 2) pixel coordinates (x, y), ``depths[n]`` (M_n,) positive depths. The output
    is positive and finite everywhere. Sources raise ``ValueError`` when the anchors are too few to fix a depth
    (callers treat that frame pair as degenerate).
    """

    min_anchors: int = 8

    def forward(self, frames: torch.Tensor, points: list[torch.Tensor], depths: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, frames: torch.Tensor, points: list[torch.Tensor], depths: list[torch.Tensor]) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3 or len(points) != len(frames) or len(depths) != len(frames):
            raise ValueError(
                f"frames must be (N, 3, H, W) with N anchor sets, got {tuple(frames.shape)}, {len(points)} sets"
            )
        for p, d in zip(points, depths, strict=True):
            if len(p) < self.min_anchors or len(p) != len(d):
                raise ValueError(f"need at least {self.min_anchors} depth anchors per frame, got {len(p)}")


def densify_inverse_depth(
    points: torch.Tensor,
    inverse_depth: torch.Tensor,
    size: tuple[int, int],
    stride: int = 4,
    bandwidth: float = 1.0,
    ridge: float = 0.1,
) -> torch.Tensor:
    """Dense inverse depth (H, W) from sparse samples by moving least squares: at every pixel, a Gaussian-weighted
    local affine fit of the samples around it.

    Inverse depth is affine in pixel coordinates on any plane, so the fit is exact within planar regions, blends
    smoothly across depth edges, and stays well-posed far from the samples (a ridge pulls the local slope towards
    the slope of one plane fitted to all samples, which also keeps the fit exact when the whole scene is a plane).
    It is evaluated every ``stride`` pixels and upsampled bilinearly. The result is clamped to the samples' range,
    so extrapolation never invents nearer or farther surfaces than were observed.

    Args:
        points: (M, 2) pixel coordinates (x, y), M >= 1.
        inverse_depth: (M,) positive values.
        size: output (H, W).
        stride: evaluation grid step in pixels (speed).
        bandwidth: Gaussian width in units of the mean sample spacing ``sqrt(H * W / M)``.
        ridge: strength of the pull towards the global slope, relative to the total weight.
    """
    height, width = size
    dtype, device = inverse_depth.dtype, inverse_depth.device
    sigma = bandwidth * (height * width / max(len(points), 1)) ** 0.5
    # evenly spaced from the first to the last pixel, as bilinear upsampling with aligned corners assumes
    ys = torch.linspace(0, height - 1, -(-(height - 1) // stride) + 1, device=device)
    xs = torch.linspace(0, width - 1, -(-(width - 1) // stride) + 1, device=device)
    # moments of the weighted local fits as matrix products, in float64 (sums of many positive terms)
    query = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2).double() / sigma  # (Q, 2)
    sample = points.double() / sigma  # (M, 2)
    value = inverse_depth.double()
    distance2 = torch.cdist(query, sample).square()
    weights = torch.exp(-0.5 * (distance2 - distance2.amin(1, keepdim=True)))  # rescaled per query: no underflow
    outer = (sample[:, :, None] * sample[:, None, :]).reshape(-1, 4)  # (M, 4)
    moments = weights @ torch.cat(
        [torch.ones_like(value[:, None]), sample, outer, value[:, None], sample * value[:, None]], 1
    )
    total, first, second = moments[:, 0], moments[:, 1:3], moments[:, 3:7].reshape(-1, 2, 2)
    value_sum, value_first = moments[:, 7], moments[:, 8:10]
    # centred on the query: sum w d, sum w d d^T, sum w d y with d = p - q
    mean_offset = first - total[:, None] * query
    spread = (
        second
        - first[:, :, None] * query[:, None, :]
        - query[:, :, None] * first[:, None, :]
        + total[:, None, None] * query[:, :, None] * query[:, None, :]
    )
    cross = value_first - query * value_sum[:, None]
    normal = torch.zeros(len(query), 3, 3, dtype=torch.float64, device=device)
    normal[:, 0, 0] = total
    normal[:, 0, 1:] = normal[:, 1:, 0] = mean_offset
    normal[:, 1:, 1:] = spread + ridge * total[:, None, None] * torch.eye(2, dtype=torch.float64, device=device)
    # the ridge pulls each local slope towards the global plane's slope (exact on planes, stable far from samples)
    design = torch.cat([torch.ones_like(value[:, None]), sample], 1)
    global_slope = torch.linalg.lstsq(design, value[:, None]).solution[1:, 0]
    if len(sample) < 3 or not torch.isfinite(global_slope).all():
        global_slope = torch.zeros_like(global_slope)
    rhs = torch.cat([value_sum[:, None], cross + ridge * total[:, None] * global_slope], 1)[..., None]
    fitted = torch.linalg.solve(normal, rhs)[:, 0, 0].to(dtype)
    value = torch.nan_to_num(fitted, nan=float(inverse_depth.median()))
    coarse = value.reshape(1, 1, len(ys), len(xs))
    dense = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=True)[0, 0]
    return dense.clamp(float(inverse_depth.min()), float(inverse_depth.max()))


def sample_at(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``image`` (C, H, W) at pixel coordinates ``points`` (M, 2) -> (M, C) (border padding)."""
    height, width = image.shape[-2:]
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=points.dtype, device=points.device)
    grid = (points * scale - 1).reshape(1, 1, -1, 2).to(image.dtype)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0, :, 0].T


def inlier_anchors(values: torch.Tensor, fitted: torch.Tensor, k: float = 3.0) -> torch.Tensor:
    """Mask (M,) of anchors whose relative residual ``fitted / value - 1`` lies within ``k`` robust standard
    deviations (1.4826 MAD, at least 1 %) of the median residual."""
    residual = fitted / values.clamp_min(1e-12) - 1
    centre = residual.median()
    sigma = (1.4826 * (residual - centre).abs().median()).clamp_min(0.01)
    return (residual - centre).abs() <= k * sigma


class TriangulatedDepth(DepthSource):
    """Weights-free depth: the triangulated anchors densified by :func:`densify_inverse_depth`, with one robust pass
    that drops anchors the first fit disagrees with (mismatches that slipped through RANSAC).

    Args:
        stride: evaluation grid step in pixels.
        bandwidth: Gaussian width in units of the mean anchor spacing.
        ridge: slope regularisation.
    """

    def __init__(self, stride: int = 4, bandwidth: float = 1.0, ridge: float = 0.1) -> None:
        super().__init__()
        self.stride, self.bandwidth, self.ridge = stride, bandwidth, ridge

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, points: list[torch.Tensor], depths: list[torch.Tensor]) -> torch.Tensor:
        self._check(frames, points, depths)
        size = (frames.shape[-2], frames.shape[-1])
        out = []
        for xy, depth in zip(points, depths, strict=True):
            xy, inverse = xy.float(), 1.0 / depth.float()
            dense = densify_inverse_depth(xy, inverse, size, self.stride, self.bandwidth, self.ridge)
            keep = inlier_anchors(inverse, sample_at(dense[None], xy)[:, 0])
            if self.min_anchors <= int(keep.sum()) < len(xy):
                dense = densify_inverse_depth(xy[keep], inverse[keep], size, self.stride, self.bandwidth, self.ridge)
            out.append(1.0 / dense)
        return torch.stack(out)[:, None].to(frames.dtype)
