"""Initial latent noise warped along a camera path, keeping every frame exactly i.i.d. standard Gaussian.

World-R1 conditions Wan on the camera motion with no new network: the initial noise of the latent video is warped
frame to frame along the optical flow the intended camera path induces, so the denoiser finds the motion already
"in" the noise. Warping Gaussian noise naively breaks it (bilinear blending shrinks the variance, nearest-neighbour
backward warping duplicates values, so neighbours correlate), and the model then sees out-of-distribution input.

The transport used here is the discrete form of "How I Warped Your Noise" (Chang et al., ICLR 2024) that
"Go-with-the-Flow" (Burgert et al., CVPR 2025) made fast:

1. Conditional upsampling: each noise pixel ``x`` becomes ``s x s`` sub-pixels ``x / s + Z - mean(Z)`` with fresh
   ``Z ~ N(0, I)``. The sub-pixels are exactly i.i.d. ``N(0, 1)`` and each block sums back to ``s * x``.
2. Forward nearest transport: every sub-pixel lands in the target pixel containing its flowed position; a target
   pixel takes ``sum / sqrt(count)`` of the sub-pixels landing in it, and fresh ``N(0, 1)`` where none lands.

Every target pixel is a normalised sum over its own disjoint set of i.i.d. standard normals, so each warped frame
is again exactly i.i.d. ``N(0, 1)`` (per-pixel standard Gaussian and spatially white), while a pure integer shift
moves the noise unchanged. The warped chain is then blended with independent noise,
``sqrt(strength) * warped + sqrt(1 - strength) * fresh``, which is again exactly ``N(0, I)``.

As the World-R1 release, the warped noise is also re-injected during the first denoising steps, with a low-pass
filter on the injected delta (:mod:`world_r1.camera.reinject`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from world_r1.camera.flow import DefaultScene, pixel_rays, project, scene_points, zoomed
from world_r1.camera.grammar import plan_for_prompt
from world_r1.camera.trajectory import MotionScale, camera_trajectory, zoom_schedule
from world_r1.geometry.pose import intrinsics_from_fov


@dataclass
class CameraConfig:
    """Implicit camera conditioning: the initial noise of each rollout is warped along its prompt's camera motion."""

    enabled: bool = False  # warp the initial noise (off: plain Gaussian noise for every prompt)
    strength: float = 0.35  # variance share of the warped noise; the rest is independent (World-R1: 0.35 1.3B, 0.4 14B)
    fov_deg: float = 60.0  # assumed horizontal field of view of the generated videos
    supersample: int = 4  # sub-pixels per side when transporting noise (more: smoother fractional flow)
    scene: DefaultScene = field(default_factory=DefaultScene)  # the assumed ground plane and backdrop
    motion: MotionScale = field(default_factory=MotionScale)  # how far one camera motion goes over the video
    reinject_steps: int = (
        8  # denoising steps after which the warped noise is re-injected (World-R1: 8; 0: initial only)
    )
    reinject_strength: float = 0.35  # share of the low-passed gap to the warped noise each re-injection closes
    reinject_kernel: int = 9  # low-pass (box) width in latent pixels: only the coarse layout of the noise is injected

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"camera.strength must be in [0, 1], got {self.strength}.")
        if self.reinject_steps < 0 or not 0.0 <= self.reinject_strength <= 1.0:
            raise ValueError("camera.reinject_steps must be >= 0 and camera.reinject_strength in [0, 1].")
        if self.reinject_kernel < 1 or self.reinject_kernel % 2 == 0:
            raise ValueError(f"camera.reinject_kernel must be an odd width >= 1, got {self.reinject_kernel}.")
        if self.supersample < 1:
            raise ValueError(f"camera.supersample must be >= 1, got {self.supersample}.")


def upsample_noise(noise: torch.Tensor, factor: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Conditional upsampling of white noise ``(C, h, w)`` to ``(C, h * s, w * s)``: i.i.d. ``N(0, 1)`` sub-pixels
    whose ``s x s`` block sums equal ``s * noise`` (so ``sum / s`` of a block gives the pixel back exactly)."""
    if factor == 1:
        return noise.clone()
    z = torch.randn(noise.shape[0], noise.shape[1] * factor, noise.shape[2] * factor, generator=generator)
    channels, height, width = noise.shape
    offset = noise / factor - F.avg_pool2d(z[None], factor)[0]
    blocks = offset[:, :, None, :, None].expand(channels, height, factor, width, factor)
    return blocks.reshape(z.shape) + z


def transport_noise(
    noise: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Move white noise ``(C, h, w)`` along a flow, keeping it exactly i.i.d. ``N(0, 1)``.

    Args:
        noise: ``(C, h, w)`` i.i.d. standard normal (float32).
        targets: ``(h * s, w * s, 2)`` (u, v) position, in target pixels, of each source sub-pixel
            (``s = targets.shape[0] // h``; see :func:`world_r1.camera.flow.forward_flow`).
        valid: ``(h * s, w * s)`` bool, sub-pixels that exist in the target frame (in front of the camera).
        generator: draws the upsampling and the noise of target pixels no sub-pixel reaches.
    Returns:
        ``(C, h, w)``: per target pixel ``sum / sqrt(count)`` of the arriving sub-pixels, fresh noise where none does.
    """
    channels, height, width = noise.shape
    factor = targets.shape[0] // height
    if targets.shape[:2] != (height * factor, width * factor):
        raise ValueError(f"targets {tuple(targets.shape)} do not cover noise {tuple(noise.shape)} with s x s cells.")
    sub = upsample_noise(noise, factor, generator).reshape(channels, -1)
    column, row = targets[..., 0].floor().long().flatten(), targets[..., 1].floor().long().flatten()
    inside = valid.flatten() & (column >= 0) & (column < width) & (row >= 0) & (row < height)
    index = (row * width + column)[inside]
    sums = torch.zeros(channels, height * width, dtype=sub.dtype)
    sums.scatter_add_(1, index.expand(channels, -1), sub[:, inside])
    counts = torch.bincount(index, minlength=height * width).to(sub.dtype)
    fresh = torch.randn(channels, height * width, generator=generator, dtype=sub.dtype)
    out = torch.where(counts > 0, sums / counts.clamp_min(1).sqrt(), fresh)
    return out.reshape(channels, height, width)


def warp_noise(
    noise: torch.Tensor,
    poses: torch.Tensor,
    config: CameraConfig,
    generator: torch.Generator | None = None,
    zooms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Warp latent noise ``(C, T, h, w)`` along world-to-camera ``poses`` (T, 4, 4), one per latent frame, with the
    focal length of frame ``k`` scaled by ``zooms[k]`` (T,) where the camera zooms (None: a fixed lens).

    Frame 0 is kept; frame ``k + 1`` blends the chain-warped frame ``k`` with ``noise[:, k + 1]`` as
    ``sqrt(strength) * warped + sqrt(1 - strength) * noise``, so ``strength = 0`` returns ``noise`` unchanged and
    every frame stays exactly i.i.d. ``N(0, 1)``. Intrinsics come from ``config.fov_deg`` at the latent resolution.
    """
    if noise.ndim != 4 or poses.shape != (noise.shape[1], 4, 4):
        raise ValueError(f"noise must be (C, T, h, w) and poses (T, 4, 4); got {tuple(noise.shape)}, {poses.shape}.")
    if zooms is not None and zooms.shape != (noise.shape[1],):
        raise ValueError(f"zooms must be (T,) = ({noise.shape[1]},), one per latent frame; got {tuple(zooms.shape)}.")
    if config.strength == 0:
        return noise.clone()
    _, frames, height, width = noise.shape
    intrinsics = zoomed(intrinsics_from_fov(config.fov_deg, height, width), 1.0 if zooms is None else zooms)
    intrinsics = intrinsics.expand(frames, 3, 3)
    out = noise.clone()
    chain = noise[:, 0].float()
    keep, mix = math.sqrt(config.strength), math.sqrt(1.0 - config.strength)
    for k in range(frames - 1):
        rays = pixel_rays(intrinsics[k], height, width, config.supersample)
        targets, valid = project(scene_points(poses[k], rays, config.scene), poses[k + 1], intrinsics[k + 1])
        chain = transport_noise(chain, targets, valid, generator)
        out[:, k + 1] = (keep * chain + mix * noise[:, k + 1].float()).to(noise.dtype)
    return out


def camera_noise(
    noise: torch.Tensor,
    prompt: str,
    camera: str | None,
    config: CameraConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The initial noise ``(C, T, h, w)`` of one rollout: warped along the camera plan of ``prompt`` (or of the
    explicit ``camera`` string, which must parse) when :func:`warps`; else ``noise`` itself."""
    if not warps(prompt, camera, config, noise.shape[1]):
        return noise
    plan, frames = plan_for_prompt(prompt, camera), noise.shape[1]
    poses, zooms = camera_trajectory(plan, frames, config.motion), zoom_schedule(plan, frames, config.motion)
    return warp_noise(noise, poses, config, generator, zooms)


def warps(prompt: str, camera: str | None, config: CameraConfig, latent_frames: int) -> bool:
    """Whether the noise of ``prompt`` is warped: warping is on, the camera moves, and there are frames to move it."""
    return config.enabled and latent_frames >= 2 and not plan_for_prompt(prompt, camera).is_static
