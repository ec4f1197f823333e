"""Camera plans to per-frame camera poses.

Conventions, shared with :mod:`world_r1.synthetic.scenes`: OpenCV camera axes (x right, y down, z forward), world
coordinates are frame 0's camera coordinates (frame 0 sits at the origin looking along +z, the ground is ``+y``), and
poses are world-to-camera (4, 4) with ``X_cam = R X_world + t``. Distances are in scene units (the default scene of
:mod:`world_r1.camera.flow` puts the ground 1 unit below the camera).

The path is a function of normalised time in [0, 1], so any frame count samples the same path: latent frame ``k`` of
a video with ``T`` latent frames (``T = (F - 1) / 4 + 1`` for Wan's VAE) sits at pixel frame ``4k``, exactly. Each
segment of the plan takes an equal share of the time and moves at constant speed; a motion at speed 1 covers one
:class:`MotionScale` amount over its segment. Signs: pan right, tilt up, dolly in, truck right, crane up and orbit
right are positive. Pan turns about the world's vertical axis and tilt about the camera's x axis (yaw, then pitch: no
roll builds up); dolly and truck travel horizontally along the current heading, crane travels vertically; orbit
travels around a pivot ``orbit_radius`` ahead along the heading, turning to keep facing it (orbit right: the camera
moves to its right and turns left). A zoom leaves the poses alone and scales the focal length
(:func:`zoom_schedule`): zoom in multiplies it by ``MotionScale.zoom`` over its segment, at a constant rate in log
scale, so the view grows by the same factor in every frame interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from world_r1.camera.grammar import CameraPlan


@dataclass
class MotionScale:
    """How far one motion segment at normal speed goes (speed words scale it: slowly x0.5, quickly x2)."""

    rotation_deg: float = 30.0  # pan/tilt angle of one segment
    orbit_deg: float = 30.0  # arc of one orbit segment, seen from the pivot
    translation: float = 1.0  # dolly/truck/crane distance of one segment (scene units; ground 1 unit below)
    orbit_radius: float = 4.0  # distance from the camera to the orbit pivot (scene units)
    zoom: float = 1.5  # focal-length ratio of one zoom segment (zoom in: x1.5, zoom out: /1.5)

    def __post_init__(self) -> None:
        if self.orbit_radius <= 0:
            raise ValueError(f"orbit_radius must be > 0, got {self.orbit_radius}.")
        if self.zoom <= 1:
            raise ValueError(f"zoom, the focal-length ratio of a zoom in, must be > 1 (e.g. 1.5); got {self.zoom}.")


def _rot_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def _rot_x(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)


def _rates(plan: CameraPlan, scale: MotionScale) -> list[dict[str, float]]:
    """Per segment, the rate of each motion kind per unit of normalised time (radians or scene units)."""
    amount = {
        "pan": math.radians(scale.rotation_deg),
        "tilt": math.radians(scale.rotation_deg),
        "orbit": math.radians(scale.orbit_deg),
        "dolly": scale.translation,
        "truck": scale.translation,
        "crane": scale.translation,
        "zoom": math.log(scale.zoom),
    }
    count = len(plan.segments)
    return [{m.kind: m.sign * m.speed * amount[m.kind] * count for m in segment} for segment in plan.segments]


def camera_trajectory(
    plan: CameraPlan, num_frames: int, scale: MotionScale | None = None, substeps: int = 256
) -> torch.Tensor:
    """World-to-camera poses (F, 4, 4) float32 of ``plan`` sampled at ``num_frames`` evenly spaced times.

    Frame 0 is the identity; a static plan gives F identities. The path is integrated with ``substeps`` steps over
    the whole video (at least one per frame interval), exactly for every motion but orbit combined with others.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    scale = scale or MotionScale()
    rates = _rates(plan, scale)
    yaw, pitch = 0.0, 0.0
    centre = torch.zeros(3, dtype=torch.float64)
    poses = [_pose(yaw, pitch, centre)]
    per_interval = max(1, math.ceil(substeps / max(num_frames - 1, 1)))
    dt = 1.0 / (max(num_frames - 1, 1) * per_interval)
    for k in range(num_frames - 1):
        for j in range(per_interval):
            t = (k * per_interval + j + 0.5) * dt
            rate = rates[min(int(t * len(rates)), len(rates) - 1)] if rates else {}
            yaw, pitch, centre = _advance(yaw, pitch, centre, rate, dt, scale.orbit_radius)
        poses.append(_pose(yaw, pitch, centre))
    return torch.stack(poses).float()


def zoom_schedule(plan: CameraPlan, num_frames: int, scale: MotionScale | None = None) -> torch.Tensor:
    """Focal length of each of ``num_frames`` evenly spaced frames relative to frame 0's (F,) float32: 1 throughout
    unless the plan zooms. Exact: the log focal length is the integral of the piecewise constant zoom rate."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    rates = [rate.get("zoom", 0.0) for rate in _rates(plan, scale or MotionScale())]
    times = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)
    log_focal = torch.zeros_like(times)
    for s, rate in enumerate(rates):
        start, end = s / len(rates), (s + 1) / len(rates)
        log_focal += rate * (times.clamp(start, end) - start)
    return log_focal.exp().float()


def _advance(yaw: float, pitch: float, centre: torch.Tensor, rate: dict[str, float], dt: float, radius: float):
    heading = _rot_y(yaw)
    step = torch.tensor([rate.get("truck", 0.0), 0.0, rate.get("dolly", 0.0)], dtype=torch.float64) * dt
    centre = centre + heading @ step + torch.tensor([0.0, -rate.get("crane", 0.0) * dt, 0.0], dtype=torch.float64)
    orbit = rate.get("orbit", 0.0) * dt
    if orbit:
        ahead = torch.tensor([0.0, 0.0, radius], dtype=torch.float64)
        pivot = centre + heading @ ahead
        yaw -= orbit
        centre = pivot - _rot_y(yaw) @ ahead
    return yaw + rate.get("pan", 0.0) * dt, pitch + rate.get("tilt", 0.0) * dt, centre


def _pose(yaw: float, pitch: float, centre: torch.Tensor) -> torch.Tensor:
    rotation_cw = _rot_y(yaw) @ _rot_x(pitch)  # camera-to-world
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = rotation_cw.T
    pose[:3, 3] = -rotation_cw.T @ centre
    return pose


def relative_motion(
    poses: torch.Tensor, first: torch.Tensor, second: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion of camera ``second[p]`` relative to camera ``first[p]`` for world-to-camera ``poses`` (F, 4, 4):
    rotations (P, 3, 3) and translations (P, 3) with ``X_second = R X_first + t`` (the convention of
    :func:`world_r1.geometry.relative_pose`; ``t`` keeps its length, in scene units)."""
    relative = poses[second] @ torch.linalg.inv(poses[first])
    return relative[:, :3, :3], relative[:, :3, 3]
