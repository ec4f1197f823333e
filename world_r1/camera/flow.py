"""Optical flow that a camera path induces over a default scene: a ground plane and a far backdrop.

A text prompt says how the camera moves, not what the scene looks like, so the flow is computed for an assumed
scene in frame 0's camera coordinates (OpenCV axes: y down, z forward): the ground is the plane
``y = camera_height`` and the backdrop the plane ``z = backdrop_distance``. Rays hitting neither (looking up and
back) see points at infinity, which move with the camera's rotation only. The scene has no occlusions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DefaultScene:
    """The assumed scene, in scene units (the ground is ``camera_height`` below frame 0's camera)."""

    camera_height: float = 1.0
    """Distance from frame 0's camera down to the ground plane."""
    backdrop_distance: float = 8.0
    """Distance from frame 0's camera to the backdrop plane ahead."""

    def __post_init__(self) -> None:
        if self.camera_height <= 0 or self.backdrop_distance <= 0:
            raise ValueError("camera_height and backdrop_distance must be > 0.")


_FAR = 1e4  # depth of points on rays that hit no plane (scene units: parallax there is below 1e-3 pixels)


def rays_through(pixels: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-frame rays ``K^-1 (u, v, 1)`` (..., 3) through ``pixels`` (..., 2) (u, v)."""
    homogeneous = torch.cat([pixels.float(), torch.ones_like(pixels[..., :1], dtype=torch.float32)], dim=-1)
    return homogeneous @ torch.linalg.inv(intrinsics.float()).T


def pixel_rays(intrinsics: torch.Tensor, height: int, width: int, supersample: int = 1) -> torch.Tensor:
    """Camera-frame rays (height * s, width * s, 3) through the centres of an ``s x s`` grid of sub-pixels in each
    pixel; pixel ``(i, j)`` covers ``u`` in ``[j, j + 1)``, ``v`` in ``[i, i + 1)``."""
    s = supersample
    v = (torch.arange(height * s, dtype=torch.float32) + 0.5) / s
    u = (torch.arange(width * s, dtype=torch.float32) + 0.5) / s
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return rays_through(torch.stack([uu, vv], -1), intrinsics)


def scene_points(pose: torch.Tensor, rays: torch.Tensor, scene: DefaultScene) -> torch.Tensor:
    """World points (..., 3) seen along camera-frame ``rays`` (..., 3) from world-to-camera ``pose`` (4, 4)."""
    pose = pose.float()
    rotation_cw = pose[:3, :3].T
    centre = -rotation_cw @ pose[:3, 3]
    directions = rays @ rotation_cw.T
    depth = torch.full(rays.shape[:-1], _FAR)
    for axis, offset in ((1, scene.camera_height), (2, scene.backdrop_distance)):
        component = directions[..., axis]
        hit = (offset - centre[axis]) / torch.where(component.abs() > 1e-9, component, torch.full_like(component, 1e-9))
        depth = torch.where((component > 1e-9) & (hit > 0) & (hit < depth), hit, depth)
    return centre + depth[..., None] * directions


def project(points: torch.Tensor, pose: torch.Tensor, intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (..., 2) as (u, v) of world ``points`` (..., 3) in the camera ``pose`` (4, 4), and a mask
    (...,) of points in front of the camera (coordinates of the others are meaningless)."""
    pose = pose.float()
    camera = points @ pose[:3, :3].T + pose[:3, 3]
    z = camera[..., 2]
    pixels = camera @ intrinsics.float().T
    return pixels[..., :2] / z.clamp_min(1e-9)[..., None], z > 1e-9


def zoomed(intrinsics: torch.Tensor, zooms: torch.Tensor | float) -> torch.Tensor:
    """``intrinsics`` (3, 3) with the focal length multiplied by each of ``zooms`` (F,) -> (F, 3, 3) (a float:
    (3, 3)); the principal point stays, so the image scales about it (:func:`world_r1.camera.zoom_schedule`)."""
    zooms = torch.as_tensor(zooms, dtype=intrinsics.dtype, device=intrinsics.device)
    out = intrinsics.expand(*zooms.shape, 3, 3).clone()
    out[..., :2, :2] *= zooms[..., None, None]
    return out


def forward_flow(
    pose_from: torch.Tensor,
    pose_to: torch.Tensor,
    intrinsics: torch.Tensor,
    height: int,
    width: int,
    scene: DefaultScene | None = None,
    supersample: int = 1,
    intrinsics_to: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each sub-pixel of the ``from`` frame lands in the ``to`` frame (whose intrinsics are ``intrinsics_to``
    where the lens changes between them, e.g. in a zoom; else ``intrinsics``).

    Returns target coordinates (height * s, width * s, 2) as (u, v) pixels of the ``to`` frame, and a mask of
    sub-pixels that land in front of the camera. The flow is ``target - source``.
    """
    rays = pixel_rays(intrinsics, height, width, supersample)
    points = scene_points(pose_from, rays, scene or DefaultScene())
    return project(points, pose_to, intrinsics if intrinsics_to is None else intrinsics_to)


def flow_at(
    pixels: torch.Tensor,
    pose_from: torch.Tensor,
    pose_to: torch.Tensor,
    intrinsics: torch.Tensor,
    scene: DefaultScene | None = None,
    intrinsics_to: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the points seen at ``pixels`` (M, 2) (u, v) of the ``from`` frame land in the ``to`` frame: target
    pixels (M, 2) and a mask (M,) of points in front of the ``to`` camera. :func:`forward_flow` at any pixels, e.g.
    the matched keypoints of two frames, whose measured displacement can then be held against the expected one."""
    points = scene_points(pose_from, rays_through(pixels, intrinsics), scene or DefaultScene())
    return project(points, pose_to, intrinsics if intrinsics_to is None else intrinsics_to)
