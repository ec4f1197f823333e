"""What every trajectory term shares: the intended camera path of each prompt, sampled at the video's frames, and
one loop over the batch that hands each video to the term's own comparison."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from world_r1.camera import MotionScale, camera_trajectory, plan_for_prompt, zoom_schedule, zoomed
from world_r1.camera.grammar import CameraPlan
from world_r1.geometry import VideoGeometry, intrinsics_from_fov
from world_r1.geometry.path import CameraPath
from world_r1.rewards.base import GeometricReward


class CameraTrajectoryReward(GeometricReward):
    """Base of the trajectory terms (World-R1's S_traj and its variants): does the camera in the video move the way
    the prompt says? Subclasses compare one video with its intended path in :meth:`score_video`.

    Raw terms (B,) of every form: ``parallax_px``, ``static_expected`` (0/1) and ``degenerate``, plus each form's
    :attr:`keys`. Never raises on degenerate input, never NaN; a ``camera`` override that does not parse raises (a
    configuration error, like in the prompt file).
    """

    #: the form's own raw outputs, besides ``score``, ``parallax_px``, ``static_expected`` and ``degenerate``
    keys: tuple[str, ...] = ()

    def __init__(self, fov_deg: float = 60.0, motion: MotionScale | None = None) -> None:
        """
        Args:
            fov_deg: assumed horizontal field of view of the videos (the same as ``camera.fov_deg`` of the module).
            motion: how far one motion of the plan goes (``camera.motion`` of the module); defaults to MotionScale().
        """
        super().__init__()
        self.fov_deg = fov_deg
        self.motion = motion or MotionScale()
        self.worst = {"score": 0.0, **dict.fromkeys(self.keys, 0.0), "parallax_px": 0.0}
        #: the camera paths the path-reading forms estimated for the last batch (None where not estimated), so a
        #: report can show why a video scored as it did (``evaluate``'s ``camera_path``)
        self.last_paths: list[CameraPath | None] = []

    @torch.no_grad()
    def score(
        self,
        videos: torch.Tensor,
        prompts: Sequence[str],
        analysis: VideoGeometry,
        cameras: Sequence[str | None] | None = None,
        **metadata: Any,
    ) -> dict[str, torch.Tensor]:
        """Score ``videos`` (B, F, 3, H, W) in [0, 1] against the camera motion of ``prompts`` (or of ``cameras[b]``,
        an explicit camera description, where given)."""
        batch, num_frames = videos.shape[:2]
        plans = [plan_for_prompt(p, cameras[b] if cameras is not None else None) for b, p in enumerate(prompts)]
        out = {key: torch.zeros(batch) for key in self.worst}
        out["degenerate"] = torch.zeros(batch)
        out["static_expected"] = torch.tensor([float(p.is_static) for p in plans])
        self.last_paths = [None] * batch
        intrinsics = intrinsics_from_fov(self.fov_deg, *analysis.size).to(videos.device)
        for b, plan in enumerate(plans):
            poses = camera_trajectory(plan, num_frames, self.motion).to(videos.device)
            zooms = zoom_schedule(plan, num_frames, self.motion).to(videos.device)
            for key, value in self.score_video(analysis, b, poses, zoomed(intrinsics, zooms), plan).items():
                out[key][b] = value
        return {k: v.to(videos.device) for k, v in out.items()}

    def score_video(
        self, analysis: VideoGeometry, b: int, poses: torch.Tensor, intrinsics: torch.Tensor, plan: CameraPlan
    ) -> dict[str, float]:
        """The raw terms of video ``b`` against the intended ``poses`` (F, 4, 4) and lens of each frame
        (``intrinsics``, F x 3 x 3); a key left out stays 0."""
        raise NotImplementedError
