"""Camera intrinsics from a field of view, relative pose from the essential matrix, triangulation."""

from __future__ import annotations

import math

import torch
from kornia.geometry.conversions import rotation_matrix_to_axis_angle
from kornia.geometry.epipolar import (
    essential_from_fundamental,
    motion_from_essential_choose_solution,
    projection_from_KRt,
    triangulate_points,
)


def intrinsics_from_fov(fov_deg: float, height: int, width: int) -> torch.Tensor:
    """Pinhole ``K`` (3, 3) with horizontal field of view ``fov_deg``, square pixels, principal point at the centre.

    Generated videos carry no calibration, so an assumed FOV stands in for it (60 degrees suits most T2V output).
    """
    if not 1.0 < fov_deg < 179.0:
        raise ValueError(f"fov_deg must be in (1, 179), got {fov_deg}")
    focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def relative_pose(
    fundamental: torch.Tensor, intrinsics: torch.Tensor, points1: torch.Tensor, points2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation (3, 3) and unit translation (3,) of camera 2 relative to camera 1 (``X2 = R X1 + t``).

    Args:
        fundamental: (3, 3) with ``x2^T F x1 = 0``.
        intrinsics: (3, 3), the same camera for both frames.
        points1, points2: (M, 2) matched pixels, used to pick the one of four solutions with points in front.
    """
    essential = essential_from_fundamental(fundamental[None], intrinsics[None], intrinsics[None])
    rotation, translation, *_ = motion_from_essential_choose_solution(
        essential, intrinsics[None], intrinsics[None], points1[None], points2[None]
    )
    translation = translation.reshape(3)
    return rotation.reshape(3, 3), translation / translation.norm().clamp_min(1e-12)


def rotation_angle_deg(rotation: torch.Tensor) -> torch.Tensor:
    """Angle in degrees of rotation matrices (..., 3, 3)."""
    return torch.rad2deg(rotation_matrix_to_axis_angle(rotation.reshape(-1, 3, 3)).norm(dim=-1)).reshape(
        rotation.shape[:-2]
    )


def triangulate(
    intrinsics: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    points1: torch.Tensor,
    points2: torch.Tensor,
) -> torch.Tensor:
    """3D points (M, 3) in camera-1 coordinates from matches, camera 1 at the origin and camera 2 at (R, t)."""
    eye = torch.eye(3, dtype=intrinsics.dtype, device=intrinsics.device)
    zero = torch.zeros(3, 1, dtype=intrinsics.dtype, device=intrinsics.device)
    projection1 = projection_from_KRt(intrinsics[None], eye[None], zero[None])
    projection2 = projection_from_KRt(intrinsics[None], rotation[None], translation.reshape(1, 3, 1))
    return triangulate_points(projection1, projection2, points1[None], points2[None])[0]
