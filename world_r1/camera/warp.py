"""Latent noise warped along a camera path, keeping every frame i.i.d. standard Gaussian: the camera settings, the
choice of warp, and the project's own transport.

World-R1 conditions Wan on the camera motion with no new network: the initial noise of the latent video is warped
frame to frame along the optical flow the intended camera path induces, so the denoiser finds the motion already
"in" the noise. Warping Gaussian noise naively breaks it (bilinear blending shrinks the variance, nearest-neighbour
backward warping duplicates values, so neighbours correlate), and the model then sees out-of-distribution input.

Two warps are offered (``camera.warp``): World-R1's, Go-with-the-Flow over a fronto-parallel plane at the video's frame
rate (:mod:`world_r1.camera.gwtf`), and the project's transport over a default scene (a ground and a backdrop) at the
latent frame rate, described here. The transport is the discrete form of "How I Warped Your Noise" (Chang et al.,
ICLR 2024) that "Go-with-the-Flow" (Burgert et al., CVPR 2025) made fast:

1. Conditional upsampling: each noise pixel ``x`` becomes ``s x s`` sub-pixels ``x / s + Z - mean(Z)`` with fresh
   ``Z ~ N(0, I)``. The sub-pixels are exactly i.i.d. ``N(0, 1)`` and each block sums back to ``s * x``.
2. Forward nearest transport: every sub-pixel lands in the target pixel containing its flowed position; a target
   pixel takes ``sum / sqrt(count)`` of the sub-pixels landing in it, and fresh ``N(0, 1)`` where none lands.

Every target pixel is a normalised sum over its own disjoint set of i.i.d. standard normals, so each warped frame
is again exactly i.i.d. ``N(0, 1)`` (per-pixel standard Gaussian and spatially white), while a pure integer shift
moves the noise unchanged. The warped chain is then blended with independent noise,
``sqrt(strength) * warped + sqrt(1 - strength) * fresh``, which is again exactly ``N(0, I)``.

How the warped noise enters a rollout (``camera.injection``: the release's step-wise delta into plain noise, or the
warped noise as the starting noise) is :mod:`world_r1.camera.reinject` and :mod:`world_r1.camera.noise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from world_r1.camera.flow import DefaultScene, pixel_rays, project, scene_points, zoomed
from world_r1.camera.grammar import plan_for_prompt
from world_r1.camera.gwtf import gwtf_noise
from world_r1.camera.trajectory import MotionScale, camera_to_world, camera_trajectory, zoom_schedule
from world_r1.geometry.pose import intrinsics_from_fov
from world_r1.settings import check_choice

Warp = Literal["gwtf", "transport"]
Injection = Literal["stepwise", "initial"]


@dataclass
class CameraConfig:
    """Implicit camera conditioning: noise warped along each prompt's camera path and injected into its rollouts.

    The defaults are World-R1's release: Go-with-the-Flow warping (:mod:`world_r1.camera.gwtf`) and its step-wise
    delta injection into plain starting noise (:class:`~world_r1.camera.reinject.StepwiseDelta`). The project's own
    choice, ``warp: transport`` with ``injection: initial``, starts every rollout from the warped noise itself.
    """

    enabled: bool = False
    """Warp and inject (off: plain Gaussian noise for every prompt)."""
    warp: Warp = "gwtf"
    """With warp gwtf: Go-with-the-Flow over a plane (the release); transport: over a ground and backdrop."""
    injection: Injection = "stepwise"
    """stepwise: the release's delta into plain noise; initial: start from the warp."""
    strength: float = 0.35
    """stepwise: the release's wrap strength (0.40 for 14B); initial: the warp's variance share."""
    degradation: float = 0.35
    """With warp gwtf: share of fresh noise blended into the warped noise (the release: 0.35)."""
    flow_scale: int = 16
    """With warp gwtf: warp resolution over latent resolution (the release: 16)."""
    focal: float = 1.2
    """With warp gwtf: focal length over the image width (the release: 1.2)."""
    plane_depth: float = 1000.0
    """With warp gwtf: distance of the plane the flow is computed over (the release: 1000)."""
    max_flow: float = 0.25
    """With warp gwtf: flows longer than this share of the larger side are scaled down (the release)."""
    fov_deg: float = 60.0
    """With warp transport: assumed horizontal field of view (and the trajectory reward's lens)."""
    supersample: int = 4
    """With warp transport: sub-pixels per side when moving noise along sub-pixel flow."""
    scene: DefaultScene = field(default_factory=DefaultScene)
    """With warp transport: the assumed ground plane and backdrop."""
    motion: MotionScale = field(default_factory=MotionScale)
    """How far one camera motion goes, and its convention."""
    reinject_steps: int = 8
    """Injections after the first steps (the release: 8; initial with 0: no re-injection)."""
    reinject_strength: float = 0.35
    """With injection initial: share of the low-passed gap to the warped noise closed each time."""
    reinject_kernel: int = 9
    """Low-pass (box) width in latent pixels on the injected delta (the release: 9)."""

    def __post_init__(self) -> None:
        check_choice("camera.warp", self.warp, Warp)
        check_choice("camera.injection", self.injection, Injection)
        if not 0.0 <= self.strength <= 1.0 or not 0.0 <= self.degradation <= 1.0:
            raise ValueError(
                f"camera.strength and camera.degradation must be in [0, 1], got {self.strength}, {self.degradation}."
            )
        if self.reinject_steps < 0 or not 0.0 <= self.reinject_strength <= 1.0:
            raise ValueError("camera.reinject_steps must be >= 0 and camera.reinject_strength in [0, 1].")
        if self.reinject_kernel < 1 or self.reinject_kernel % 2 == 0:
            raise ValueError(f"camera.reinject_kernel must be an odd width >= 1, got {self.reinject_kernel}.")
        if self.supersample < 1 or self.flow_scale < 1:
            raise ValueError(
                f"camera.supersample and camera.flow_scale must be >= 1, got {self.supersample}, {self.flow_scale}."
            )
        if self.focal <= 0 or self.plane_depth <= 0 or self.max_flow <= 0:
            raise ValueError("camera.focal, camera.plane_depth and camera.max_flow must be > 0.")


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


def warps(prompt: str, camera: str | None, config: CameraConfig, latent_frames: int) -> bool:
    """Whether the noise of ``prompt`` is warped: warping is on, there are frames to move, and the prompt gives a
    camera: any camera for Go-with-the-Flow ("Camera fixed." freezes the noise, pulling toward a still camera, as the
    release does), a moving one for the transport."""
    if not config.enabled or latent_frames < 2:
        return False
    plan = plan_for_prompt(prompt, camera)
    return plan.has_camera if config.warp == "gwtf" else not plan.is_static


def warped_noise(
    noise: torch.Tensor,
    prompt: str,
    camera: str | None,
    config: CameraConfig,
    temporal_factor: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The camera noise ``(C, T, h, w)`` of one rollout whose plain noise is ``noise``, by ``config.warp``: the
    transport warps ``noise`` itself and blends it with independent noise (variance share ``strength``); Go-with-the-
    Flow warps noise of its own, drawn from ``generator``, along the path at the video's frame rate. The camera path
    is that of ``prompt`` (or of the explicit ``camera`` string, which must parse) at the video's
    ``(T - 1) * temporal_factor + 1`` frames; call it only where :func:`warps`. Go-with-the-Flow runs on ``device``
    (the rollout's); the result is on the CPU."""
    plan = plan_for_prompt(prompt, camera)
    frames = (noise.shape[1] - 1) * temporal_factor + 1
    poses, zooms = camera_trajectory(plan, frames, config.motion), zoom_schedule(plan, frames, config.motion)
    if config.warp == "transport":
        return warp_noise(noise, poses[::temporal_factor], config, generator, zooms[::temporal_factor])
    return gwtf_noise(
        camera_to_world(poses),
        tuple(noise.shape),
        temporal_factor,
        config.flow_scale,
        config.focal,
        config.plane_depth,
        config.max_flow,
        config.degradation,
        generator,
        zooms,
        device,
    ).to(noise.dtype)
