"""Synthetic videos with known 3D geometry, for tests, notebooks and sanity checks of the 3D rewards.

A scene is a few textured planes (ground, backdrop, a side wall) seen by a pinhole camera that moves along a known
trajectory. Conventions: OpenCV camera axes (x right, y down, z forward); ``poses`` are world-to-camera (4, 4),
``X_cam = R X_world + t``; frame 0's camera is at the origin looking along +z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from world_r1.geometry.pose import intrinsics_from_fov

# planes as (normal, offset, texture axes): points X with normal . X = offset
_PLANES = (
    ((0.0, 1.0, 0.0), 1.0, (0, 2)),  # ground, 1 unit below the camera
    ((0.0, 0.0, 1.0), 7.0, (0, 1)),  # backdrop, 7 units ahead
    ((1.0, 0.0, 0.0), -2.5, (2, 1)),  # wall on the left
)


@dataclass
class SyntheticVideo:
    """``video`` (F, 3, H, W) in [0, 1], ``poses`` (F, 4, 4) world-to-camera, ``intrinsics`` (3, 3), and the true
    ``depth`` (F, 1, H, W) along the optical axis (world units; ``inf`` where a ray hits nothing)."""

    video: torch.Tensor
    poses: torch.Tensor
    intrinsics: torch.Tensor
    depth: torch.Tensor | None = None


def _texture(generator: torch.Generator, size: int = 256) -> torch.Tensor:
    """A colourful multi-scale noise texture (3, size, size): strong corners and blobs at several scales."""
    texture = torch.zeros(3, size, size)
    for cells in (4, 8, 16, 32, 64):
        noise = torch.rand(1, 3, cells, cells, generator=generator)
        texture += F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)[0] / cells**0.3
    texture = (texture - texture.amin()) / (texture.amax() - texture.amin())
    return texture


def _rotation_y(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])


def camera_path(num_frames: int, step: tuple[float, float, float] = (0.06, 0.0, 0.04), yaw_deg: float = 0.6):
    """World-to-camera poses (F, 4, 4) of a camera moving ``step`` per frame (world units) while turning ``yaw_deg``
    per frame about the vertical axis (positive: to the right)."""
    poses = []
    for k in range(num_frames):
        rotation_cw = _rotation_y(yaw_deg * k)  # camera-to-world rotation
        centre = torch.tensor(step) * k
        pose = torch.eye(4)
        pose[:3, :3] = rotation_cw.T
        pose[:3, 3] = -rotation_cw.T @ centre
        poses.append(pose)
    return torch.stack(poses)


def render(
    poses: torch.Tensor, height: int = 128, width: int = 128, fov_deg: float = 60.0, seed: int = 0
) -> SyntheticVideo:
    """Render the textured-plane scene ``seed`` from each world-to-camera pose in ``poses`` (F, 4, 4)."""
    generator = torch.Generator().manual_seed(seed)
    textures = [_texture(generator) for _ in _PLANES]
    intrinsics = intrinsics_from_fov(fov_deg, height, width)
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    rays_cam = torch.stack([u, v, torch.ones_like(u)], -1) @ torch.linalg.inv(intrinsics).T  # (H, W, 3)
    frames, depths = [], []
    for pose in poses:
        rotation_cw, centre = pose[:3, :3].T, -pose[:3, :3].T @ pose[:3, 3]
        rays = rays_cam @ rotation_cw.T
        best = torch.full((height, width), float("inf"))
        colour = torch.zeros(3, height, width)
        for (normal, offset, axes), texture in zip(_PLANES, textures, strict=True):
            n = torch.tensor(normal)
            denominator = rays @ n
            depth = (offset - centre @ n) / torch.where(
                denominator.abs() < 1e-6, torch.full_like(denominator, 1e-6), denominator
            )
            hit = (depth > 0) & (depth < best)
            points = centre + depth[..., None] * rays
            coords = torch.stack([points[..., axes[0]], points[..., axes[1]]], -1) / 4.0  # 4 world units per tile
            coords = torch.remainder(coords + 1, 2) - 1  # tile the texture
            sample = F.grid_sample(texture[None], coords[None], mode="bilinear", align_corners=False)[0]
            colour = torch.where(hit, sample, colour)
            best = torch.where(hit, depth, best)
        frames.append(colour)
        depths.append(best)  # ray parameter along rays with z = 1 in camera coordinates: the z-depth
    return SyntheticVideo(torch.stack(frames).clamp(0, 1), poses, intrinsics, torch.stack(depths)[:, None])


def rigid_video(
    num_frames: int = 12, height: int = 128, width: int = 128, seed: int = 0, static: bool = False
) -> SyntheticVideo:
    """A rigid scene under a moving camera (or a frozen camera with ``static``)."""
    poses = camera_path(num_frames, step=(0.0, 0.0, 0.0), yaw_deg=0.0) if static else camera_path(num_frames)
    return render(poses, height, width, seed=seed)


def morph(video: torch.Tensor, amplitude_px: float, seed: int = 0, cells: int = 4) -> torch.Tensor:
    """Warp every frame of ``video`` (F, 3, H, W) by its own smooth random displacement of up to ``amplitude_px``:
    each frame stays plausible but the frames no longer come from one rigid 3D scene."""
    if amplitude_px == 0:
        return video.clone()
    generator = torch.Generator().manual_seed(seed)
    num_frames, _, height, width = video.shape
    field = torch.randn(num_frames, 2, cells, cells, generator=generator)
    field = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True)
    field = field / field.abs().amax(dim=(1, 2, 3), keepdim=True) * amplitude_px
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    grid_x = (xs + field[:, 0]) / width * 2 - 1
    grid_y = (ys + field[:, 1]) / height * 2 - 1
    return F.grid_sample(
        video, torch.stack([grid_x, grid_y], -1), mode="bilinear", padding_mode="border", align_corners=False
    )


def unrelated_frames(num_frames: int = 12, height: int = 128, width: int = 128, seed: int = 0) -> torch.Tensor:
    """(F, 3, H, W): every frame a different scene, the same camera."""
    pose = camera_path(1)
    return torch.cat([render(pose, height, width, seed=seed * 1000 + k).video for k in range(num_frames)])
