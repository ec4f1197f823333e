"""World-R1's camera path: prompt -> camera plan -> per-frame poses -> warped noise -> injection into rollouts."""

from world_r1.camera.flow import DefaultScene, flow_at, forward_flow, zoomed
from world_r1.camera.grammar import (
    FIXED,
    RELEASE_PHRASES,
    STATIC,
    CameraParseError,
    CameraPlan,
    Motion,
    parse_camera,
    plan_for_prompt,
    release_phrases,
)
from world_r1.camera.gwtf import gwtf_noise, plane_flow
from world_r1.camera.noise import StartingNoise, starting_noise
from world_r1.camera.trajectory import (
    CLASSIC_MOTION,
    MotionScale,
    camera_to_world,
    camera_trajectory,
    relative_motion,
    release_frames,
    zoom_schedule,
)
from world_r1.camera.warp import CameraConfig, transport_noise, upsample_noise, warp_noise, warped_noise, warps

__all__ = [
    "CLASSIC_MOTION",
    "FIXED",
    "RELEASE_PHRASES",
    "STATIC",
    "CameraConfig",
    "CameraParseError",
    "CameraPlan",
    "DefaultScene",
    "Motion",
    "MotionScale",
    "StartingNoise",
    "camera_to_world",
    "camera_trajectory",
    "flow_at",
    "forward_flow",
    "gwtf_noise",
    "parse_camera",
    "plan_for_prompt",
    "plane_flow",
    "relative_motion",
    "release_frames",
    "release_phrases",
    "starting_noise",
    "transport_noise",
    "upsample_noise",
    "warp_noise",
    "warped_noise",
    "warps",
    "zoom_schedule",
    "zoomed",
]
