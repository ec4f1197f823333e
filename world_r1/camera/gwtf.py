"""Go-with-the-Flow noise warping, as World-R1's release warps its noise along the camera path.

Go-with-the-Flow (Burgert et al., CVPR 2025, arXiv 2501.08331) moves Gaussian noise along an optical flow while
keeping it Gaussian. Its state is, per pixel, a weight and the noise channels (its sub-pixel offsets are off in the
release: each step's flow is rounded to whole pixels, 1/16 of a latent pixel at the release's 16x warp resolution).
One step of flow ``F``:

1. *expand*: every target pixel ``p`` copies the source pixel nearest to ``p - F(p)``; pixels with no source
   (uncovered at the border) start as "new" (weight 1, noise 0);
2. *shrink*: every source pixel ``q`` lands on the target pixel ``round(q + F(q))``; sources that leave the frame
   stay put as "new"; a target pixel reached by any source takes the shrink result, the others the expand copy;
3. *regaussianise*: a source copied ``n`` times (all "new" pixels count as one) becomes ``x / sqrt(n) + z - mean(z)``
   per copy, with fresh ``z`` (so the copies stay N(0, 1) and sum back to ``sqrt(n) x``), and its weight is split
   ``n`` ways;
4. a shrink target sums its sources: weight ``sum w``, noise ``sum(w x) / sqrt(sum w^2)``; weights are renormalised
   to mean 1, then ``(w + 1e-5) ** 0.9999``.

The camera's flow is that of a fronto-parallel plane (:func:`plane_flow`, the release's scene: depth 1000, focal
length 1.2 x width, scaled down whenever its largest vector exceeds a quarter of the larger side), applied frame to
frame at the video's frame rate at ``flow_scale`` times the latent resolution; latent frames are the warped noise at
video frames ``0, t, 2t, ...`` (``t`` the VAE's temporal factor), binned down to latent resolution variance-
preservingly (block sums over ``sqrt(flow_scale^2)``), then blended with fresh noise, variance-preserving:
``(d * fresh + (1 - d) * warped) / sqrt(d^2 + (1 - d)^2)`` with ``d`` the degradation (0.35).

Netflix holds a patent application on the Go-with-the-Flow method (US 2026/0134518 A1); check its status before a
commercial use of this warp. :func:`world_r1.camera.warp.transport_noise` is the project's own transport.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def plane_flow(
    pose_from: torch.Tensor,
    pose_to: torch.Tensor,
    height: int,
    width: int,
    focal: float,
    depth: float = 1000.0,
    max_share: float = 0.25,
    focal_to: float | None = None,
) -> torch.Tensor:
    """Flow ``(2, H, W)`` (dx, dy in pixels) that a fronto-parallel plane at ``depth`` in front of the ``from`` camera
    undergoes when the camera moves from ``pose_from`` to ``pose_to`` (camera-to-world (4, 4), OpenCV axes), seen
    with focal length ``focal`` before and ``focal_to`` after (a zoom; None: the same lens).

    Pixel ``(i, j)`` sits at ``(j - W/2, i - H/2)`` from the principal point (the release's centred grid); points
    behind the ``to`` camera are clamped to depth 0.01. If the longest vector exceeds ``max_share`` of the larger side,
    the whole flow is scaled down to that length (the release's guard against flows that would tear the noise).
    """
    relative = torch.linalg.inv(pose_to.double()) @ pose_from.double()
    device = relative.device
    x = (torch.arange(width, dtype=torch.float64, device=device) - width / 2) / focal
    y = (torch.arange(height, dtype=torch.float64, device=device) - height / 2) / focal
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    points = torch.stack([xx, yy, torch.ones_like(xx)]) * depth  # (3, H, W) on the plane, in the from camera
    moved = torch.einsum("ij,jhw->ihw", relative[:3, :3], points) + relative[:3, 3, None, None]
    z = moved[2].clamp_min(0.01)
    after = focal if focal_to is None else focal_to
    flow = torch.stack([moved[0] / z * after - xx * focal, moved[1] / z * after - yy * focal])
    longest = float(flow.norm(dim=0).max())
    limit = max_share * max(height, width)
    if math.isfinite(longest) and longest > limit:
        flow = flow * (limit / (longest + 1e-8))
    return flow.float()


def _group_sums(values: torch.Tensor, groups: torch.Tensor, count: int) -> torch.Tensor:
    """(C, count) sums of ``values`` (C, N) by ``groups`` (N,) in [0, count)."""
    return values.new_zeros(values.shape[0], count).index_add_(1, groups, values)


def warp_step(
    weight: torch.Tensor, noise: torch.Tensor, flow: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Go-with-the-Flow step (module docstring): the state ``weight`` (H, W) > 0 and ``noise`` (C, H, W) moved
    along ``flow`` (2, H, W) (dx, dy of each source pixel, in pixels). Returns the new ``(weight, noise)``; a noise of
    i.i.d. N(0, 1) pixels stays so."""
    channels, height, width = noise.shape
    size, device = height * width, noise.device
    rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    every = torch.arange(size, device=device)
    # expand: each target pixel's nearest source along the backward flow; ids index the source pixels, `size` = new
    src_col, src_row = torch.round(cols - flow[0]).long(), torch.round(rows - flow[1]).long()
    inside = (src_col >= 0) & (src_col < width) & (src_row >= 0) & (src_row < height)
    expand_id = torch.where(inside, src_row * width + src_col, size).flatten()
    # shrink: each source pixel's landing spot; sources that leave the frame stay where they are, as new pixels
    dst_col, dst_row = torch.round(cols + flow[0]).long(), torch.round(rows + flow[1]).long()
    lands = ((dst_col >= 0) & (dst_col < width) & (dst_row >= 0) & (dst_row < height)).flatten()
    target = torch.where(lands, (dst_row * width + dst_col).flatten(), every)
    reached = torch.zeros(size, dtype=torch.bool, device=device).index_fill_(0, target, True)
    expand_id = torch.where(reached, size, expand_id)  # targets the shrink reaches take its result
    shrink_id = torch.where(lands, every, size)
    # regaussianise the copies of each source over both halves (the release's concatenation), "new" as one group
    flat_weight = torch.cat([weight.flatten(), weight.new_ones(1)])
    flat_noise = torch.cat([noise.reshape(channels, size), noise.new_zeros(channels, 1)], dim=1)
    ids = torch.cat([shrink_id, expand_id])
    counts = torch.bincount(ids, minlength=size + 1).to(noise.dtype)
    foreign = torch.randn(channels, 2 * size, generator=generator, dtype=noise.dtype, device=device)
    foreign_mean = _group_sums(foreign, ids, size + 1) / counts.clamp_min(1)
    copies = flat_noise[:, ids] / counts[ids].sqrt() + foreign - foreign_mean[:, ids]
    copy_weight = flat_weight[ids] / counts[ids]
    shrink_noise, expand_noise = copies[:, :size], copies[:, size:]
    shrink_weight, expand_weight = copy_weight[:size], copy_weight[size:]
    # shrink targets combine their sources
    summed = noise.new_zeros(size).index_add_(0, target, shrink_weight)
    squares = noise.new_zeros(size).index_add_(0, target, shrink_weight**2)
    combined = _group_sums(shrink_noise * shrink_weight, target, size) / squares.clamp_min(1e-30).sqrt()
    out_weight = torch.where(reached, summed, expand_weight)
    out_noise = torch.where(reached, combined, expand_noise)
    out_weight = (out_weight / out_weight.mean() + 1e-5) ** 0.9999
    return out_weight.reshape(height, width), out_noise.reshape(channels, height, width)


def blend(background: torch.Tensor, foreground: torch.Tensor, alpha: float) -> torch.Tensor:
    """The release's variance-preserving blend ``(alpha fg + (1 - alpha) bg) / sqrt(alpha^2 + (1 - alpha)^2)``."""
    return (alpha * foreground + (1 - alpha) * background) / math.sqrt(alpha**2 + (1 - alpha) ** 2)


def bin_noise(noise: torch.Tensor, factor: int) -> torch.Tensor:
    """Variance-preserving downsampling of noise (C, H, W) by an integer ``factor``: block sums over ``factor``,
    so i.i.d. N(0, 1) pixels give i.i.d. N(0, 1) pixels."""
    return F.avg_pool2d(noise[None], factor)[0] * factor


def gwtf_noise(
    poses: torch.Tensor,
    shape: tuple[int, int, int, int],
    temporal_factor: int,
    flow_scale: int = 16,
    focal: float = 1.2,
    depth: float = 1000.0,
    max_flow: float = 0.25,
    degradation: float = 0.35,
    generator: torch.Generator | None = None,
    zooms: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Latent noise ``shape`` (C, T, h, w) warped along camera-to-world ``poses`` (F, 4, 4), one per video frame,
    ``F = (T - 1) * temporal_factor + 1``, as the release warps it (module docstring). ``focal`` is the focal length
    over the warp grid's width, scaled per frame by ``zooms`` (F,) where the camera zooms (None: a fixed lens, as the
    release always has); ``degradation`` the share of fresh noise blended in at the end.

    The warp runs on ``device`` (at 832x480x81 it is 80 steps over a 960x1664 grid: minutes on a CPU, the rollout's
    GPU takes it in far less), its draws from a generator there seeded by ``generator``; the result is on the CPU."""
    channels, frames, height, width = shape
    if poses.shape != ((frames - 1) * temporal_factor + 1, 4, 4):
        raise ValueError(
            f"poses must be one per video frame: ({(frames - 1) * temporal_factor + 1}, 4, 4) for {frames} latent "
            f"frames at a temporal factor of {temporal_factor}; got {tuple(poses.shape)}."
        )
    if not 0.0 <= degradation <= 1.0:
        raise ValueError(f"camera.degradation must be in [0, 1], got {degradation}.")
    device = torch.device(device)
    if device.type != "cpu":  # seeded from the sample's generator, so each sample's warp is reproducible per device
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        generator = torch.Generator(device).manual_seed(seed)
    poses = poses.to(device)
    big_h, big_w = height * flow_scale, width * flow_scale
    noise = torch.randn(channels, big_h, big_w, generator=generator, device=device)
    weight = torch.ones(big_h, big_w, device=device)
    latent = [bin_noise(noise, flow_scale)]
    lens = [focal * big_w * (1.0 if zooms is None else float(zooms[f])) for f in range(poses.shape[0])]
    for f in range(1, poses.shape[0]):
        flow = plane_flow(poses[f - 1], poses[f], big_h, big_w, lens[f - 1], depth, max_flow, lens[f])
        weight, noise = warp_step(weight, noise, flow, generator)
        if f % temporal_factor == 0:
            latent.append(bin_noise(noise, flow_scale))
    warped = torch.stack(latent, dim=1)
    if degradation == 0:
        return warped.cpu()
    return blend(warped, torch.randn(warped.shape, generator=generator, device=device), degradation).cpu()
