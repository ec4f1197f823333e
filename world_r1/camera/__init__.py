"""World-R1's camera path: prompt -> camera plan -> per-frame poses -> flow over a default scene -> warped noise."""

from world_r1.camera.flow import DefaultScene, flow_at, forward_flow, zoomed
from world_r1.camera.grammar import STATIC, CameraParseError, CameraPlan, Motion, parse_camera, plan_for_prompt
from world_r1.camera.trajectory import MotionScale, camera_trajectory, relative_motion, zoom_schedule
from world_r1.camera.warp import CameraConfig, camera_noise, transport_noise, upsample_noise, warp_noise

__all__ = [
    "STATIC",
    "CameraConfig",
    "CameraParseError",
    "CameraPlan",
    "DefaultScene",
    "Motion",
    "MotionScale",
    "camera_noise",
    "camera_trajectory",
    "flow_at",
    "forward_flow",
    "parse_camera",
    "plan_for_prompt",
    "relative_motion",
    "transport_noise",
    "upsample_noise",
    "warp_noise",
    "zoom_schedule",
    "zoomed",
]
