"""Feed-forward 3D reconstruction of videos (Depth Anything 3) and the 3D Gaussians' renderer."""

from world_r1.reconstruction.da3 import DepthAnything3
from world_r1.reconstruction.gaussians import Gaussians, Render, render_gaussians
from world_r1.reconstruction.scene import Reconstruction

__all__ = ["DepthAnything3", "Gaussians", "Reconstruction", "Render", "render_gaussians"]
