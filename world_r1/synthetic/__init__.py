"""Synthetic videos with known geometry: rigid scenes, morphed (3D-inconsistent) versions, unrelated frames."""

from world_r1.synthetic.scenes import SyntheticVideo, camera_path, morph, render, rigid_video, unrelated_frames

__all__ = ["SyntheticVideo", "camera_path", "morph", "render", "rigid_video", "unrelated_frames"]
