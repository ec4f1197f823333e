"""A video's reconstruction: per-frame cameras, depth and 3D Gaussians, in one world frame."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world_r1.reconstruction.gaussians import Gaussians


@dataclass
class Reconstruction:
    """One video's reconstruction.

    Attributes:
        poses: (F, 4, 4) camera-to-world per frame, OpenCV axes (x right, y down, z forward), in the reconstructor's
            arbitrary world frame and scale (Depth Anything 3: up to scale, not metric).
        intrinsics: (F, 3, 3) pinhole intrinsics in pixels of ``image_size``.
        image_size: (h, w) of the frames as the reconstructor saw them.
        depth: (F, h, w) z-depth per pixel, in the poses' units.
        confidence: (F, h, w) the reconstructor's depth confidence, or None.
        gaussians: the scene's 3D Gaussians in the world frame, or None.
    """

    poses: torch.Tensor
    intrinsics: torch.Tensor
    image_size: tuple[int, int]
    depth: torch.Tensor
    confidence: torch.Tensor | None = None
    gaussians: Gaussians | None = None

    def __post_init__(self) -> None:
        frames = self.poses.shape[0]
        if self.poses.shape != (frames, 4, 4) or self.intrinsics.shape != (frames, 3, 3):
            raise ValueError(
                f"poses must be (F, 4, 4) and intrinsics (F, 3, 3), got {tuple(self.poses.shape)}, "
                f"{tuple(self.intrinsics.shape)}"
            )

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    @property
    def extrinsics(self) -> torch.Tensor:
        """(F, 4, 4) world-to-camera."""
        return torch.linalg.inv(self.poses)

    def intrinsics_at(self, height: int, width: int) -> torch.Tensor:
        """(F, 3, 3) the intrinsics for an image of (height, width) covering the same view (each axis scaled)."""
        scale = torch.tensor([width / self.image_size[1], height / self.image_size[0], 1.0], device=self.poses.device)
        return self.intrinsics * scale[None, :, None]
