"""Camera plans to per-frame camera poses.

Conventions, shared with :mod:`world_r1.synthetic.scenes`: OpenCV camera axes (x right, y down, z forward), world
coordinates are frame 0's camera coordinates (frame 0 sits at the origin looking along +z), and poses are
world-to-camera (4, 4) with ``X_cam = R X_world + t`` (:func:`camera_to_world` gives the other way round). Signs: pan
right, tilt up, dolly in, truck right, crane up and orbit right are positive; pan turns about the vertical axis and
tilt about the camera's x axis (yaw, then pitch: no roll builds up). A zoom leaves the poses alone and scales the
focal length (:func:`zoom_schedule`): zoom in multiplies it by ``MotionScale.zoom`` over its movement, at a constant
rate in log scale.

Two conventions place the movements of a plan in time and say what an orbit is (:class:`MotionScale`):

- ``release``, World-R1's camera path, the default. A plan of ``n`` movements gives each ``max(2, ceil(F / n))``
  frames, in which it moves linearly in its own progress ``i / (frames - 1)`` by its total; each movement is
  expressed in the camera frame where the previous one ended (so the last frame of one and the first of the next are
  the same pose), and the chained path is resampled to ``F`` frames by rounding (``round(i (nm - 1) / (F - 1))``,
  Python's rounding). Translations move in the movement's starting frame, turns yaw then pitch. An orbit rides a
  circle of radius ``orbit_radius`` about a vertical axis that far behind the camera while turning the other way:
  "orbit left" (sign -1) by an arc ``a`` ends turned ``a`` to the left and displaced by
  ``(r sin a, 0, r cos a - r)``: to the right and slightly back (24 degrees and r = 600: ``(+244, 0, -52)``).
- ``classic``, the project's first convention (its mini world was rendered and trained with it): each movement takes
  an equal share of continuous time, so any frame count samples the same path (latent frame ``k`` sits at pixel
  frame ``4k``), and the motion is integrated (a pan while trucking curves the travel); dolly and truck travel along
  the current heading, crane vertically; an orbit travels around a pivot ``orbit_radius`` ahead, turning to keep
  facing it ("orbit right" moves right and turns left).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from world_r1.camera.grammar import CameraPlan

Convention = Literal["release", "classic"]
CONVENTIONS: tuple[str, ...] = ("release", "classic")


@dataclass
class MotionScale:
    """How far one movement at normal speed goes (speed words scale it: slowly x0.5, quickly x2) and the convention
    of the path. The defaults are World-R1's release, in its units (its noise warp assumes a plane 1000 units ahead)."""

    rotation_deg: float = 14.0
    """Pan / tilt angle of one movement (World-R1's pan: 14 degrees)."""
    orbit_deg: float = 24.0
    """Arc of one orbit (World-R1: 24 degrees)."""
    translation: float = 220.0
    """Sideways and vertical travel: move left/right, truck, crane (World-R1: 220)."""
    orbit_radius: float = 600.0
    """release: radius of the orbit's circle (World-R1: 600); classic: distance to the pivot."""
    zoom: float = 1.5
    """Focal-length ratio of one zoom in (zoom out: its inverse)."""
    dolly: float = 600.0
    """Travel along the view: push in, pull out (World-R1: 600)."""
    convention: Convention = "release"
    """release: World-R1's path (module docstring); classic: the project's first."""

    def __post_init__(self) -> None:
        if self.orbit_radius <= 0:
            raise ValueError(f"orbit_radius must be > 0, got {self.orbit_radius}.")
        if self.zoom <= 1:
            raise ValueError(f"zoom, the focal-length ratio of a zoom in, must be > 1 (e.g. 1.5); got {self.zoom}.")
        if self.convention not in CONVENTIONS:
            raise ValueError(
                f"camera.motion.convention must be one of {list(CONVENTIONS)}, got {self.convention!r}: release is "
                "World-R1's camera path, classic the project's first (the mini world's)."
            )


def saved_motion(settings: dict) -> dict:
    """A ``MotionScale`` saved as a mapping (a manifest, a checkpoint) with what it lacked filled as the run behaved:
    saved before conventions existed it is ``classic``, and its dolly travelled as far as its other travel."""
    settings = dict(settings)
    if "convention" not in settings:
        settings["convention"] = "classic"
        settings.setdefault("dolly", settings.get("translation", 1.0))
    return settings


#: the project's first defaults, in the units of its default scene (ground 1 unit below): what its photograph clips,
#: their validations and the classic tests were made with
CLASSIC_MOTION = MotionScale(
    rotation_deg=30.0, orbit_deg=30.0, translation=1.0, orbit_radius=4.0, zoom=1.5, dolly=1.0, convention="classic"
)


def _rot_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def _rot_x(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)


def _amounts(scale: MotionScale) -> dict[str, float]:
    """What one movement of each kind at speed 1 covers: radians, scene units, or log focal-length ratio."""
    return {
        "pan": math.radians(scale.rotation_deg),
        "tilt": math.radians(scale.rotation_deg),
        "orbit": math.radians(scale.orbit_deg),
        "dolly": scale.dolly,
        "truck": scale.translation,
        "crane": scale.translation,
        "zoom": math.log(scale.zoom),
    }


def camera_trajectory(
    plan: CameraPlan, num_frames: int, scale: MotionScale | None = None, substeps: int = 256
) -> torch.Tensor:
    """World-to-camera poses (F, 4, 4) float32 of ``plan`` at ``num_frames`` frames, by the convention of ``scale``
    (the module docstring). Frame 0 is the identity; a static plan gives F identities. The classic path is
    integrated with ``substeps`` steps over the whole video, exactly for every motion but orbit combined with others;
    the release's is exact."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    scale = scale or MotionScale()
    if scale.convention == "release":
        return torch.linalg.inv(_release_path(plan, num_frames, scale)[0]).float()
    return _classic_path(plan, num_frames, scale, substeps)


def camera_to_world(poses: torch.Tensor) -> torch.Tensor:
    """Camera-to-world poses (..., 4, 4) of world-to-camera ``poses``: rotation columns are the camera's axes in the
    world, the last column its centre."""
    return torch.linalg.inv(poses.double()).to(poses.dtype)


def zoom_schedule(plan: CameraPlan, num_frames: int, scale: MotionScale | None = None) -> torch.Tensor:
    """Focal length of each of ``num_frames`` frames relative to frame 0's (F,) float32: 1 throughout unless the plan
    zooms. Exact: the log focal length is the integral of the piecewise constant zoom rate (classic), or moves
    linearly in each movement's progress (release)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    scale = scale or MotionScale()
    if scale.convention == "release":
        return _release_path(plan, num_frames, scale)[1].float()
    rates = [rate.get("zoom", 0.0) for rate in _rates(plan, scale)]
    times = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)
    log_focal = torch.zeros_like(times)
    for s, rate in enumerate(rates):
        start, end = s / len(rates), (s + 1) / len(rates)
        log_focal += rate * (times.clamp(start, end) - start)
    return log_focal.exp().float()


# ------------------------------------------------------------------------------------------- release convention
def release_frames(num_movements: int, num_frames: int) -> list[tuple[int, float]]:
    """``(movement, progress)`` of each of ``num_frames`` frames on World-R1's chained path: ``max(2, ceil(F / n))``
    frames per movement at progress ``i / (frames - 1)``, the ``n * frames`` chained frames resampled to ``F`` by
    rounding (Python's ``round``, half to even, as the release)."""
    if num_movements == 0:
        return [(0, 0.0)] * num_frames
    per = max(2, math.ceil(num_frames / num_movements))
    chained = [(k, i / (per - 1)) for k in range(num_movements) for i in range(per)]
    if num_frames >= len(chained):
        return chained + [chained[-1]] * (num_frames - len(chained))
    if num_frames == 1:
        return [chained[0]]
    return [chained[round(i * (len(chained) - 1) / (num_frames - 1))] for i in range(num_frames)]


def _local_pose(segment, progress: float, scale: MotionScale, amounts: dict[str, float]):
    """Camera-to-world pose (4, 4) float64 and log focal-length ratio of one movement at ``progress`` in [0, 1],
    relative to where the movement starts (the release's formulas: linear in progress)."""
    done = {m.kind: m.sign * m.speed * amounts[m.kind] * progress for m in segment}
    centre = torch.tensor(
        [done.get("truck", 0.0), -done.get("crane", 0.0), done.get("dolly", 0.0)], dtype=torch.float64
    )
    yaw = done.get("pan", 0.0)
    if "orbit" in done:  # "orbit left" (sign -1): the circle's angle grows, the camera turns left
        angle, radius = -done["orbit"], scale.orbit_radius
        centre += torch.tensor([radius * math.sin(angle), 0.0, radius * math.cos(angle) - radius], dtype=torch.float64)
        yaw -= angle
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = _rot_y(yaw) @ _rot_x(done.get("tilt", 0.0))
    pose[:3, 3] = centre
    return pose, done.get("zoom", 0.0)


def _release_path(plan: CameraPlan, num_frames: int, scale: MotionScale) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-to-world poses (F, 4, 4) and focal-length ratios (F,), float64, of the release's chained path."""
    amounts = _amounts(scale)
    starts, log_zooms = [torch.eye(4, dtype=torch.float64)], [0.0]
    for segment in plan.segments:  # where each movement starts: the end of the previous one
        end, log_zoom = _local_pose(segment, 1.0, scale, amounts)
        starts.append(starts[-1] @ end)
        log_zooms.append(log_zooms[-1] + log_zoom)
    poses, zooms = [], []
    for k, progress in release_frames(len(plan.segments), num_frames):
        if not plan.segments:
            pose, log_zoom = torch.eye(4, dtype=torch.float64), 0.0
        else:
            pose, log_zoom = _local_pose(plan.segments[k], progress, scale, amounts)
        poses.append(starts[k] @ pose)
        zooms.append(math.exp(log_zooms[k] + log_zoom))
    return torch.stack(poses), torch.tensor(zooms, dtype=torch.float64)


# ------------------------------------------------------------------------------------------- classic convention
def _rates(plan: CameraPlan, scale: MotionScale) -> list[dict[str, float]]:
    """Per segment, the rate of each motion kind per unit of normalised time (radians or scene units)."""
    amount = _amounts(scale)
    count = len(plan.segments)
    return [{m.kind: m.sign * m.speed * amount[m.kind] * count for m in segment} for segment in plan.segments]


def _classic_path(plan: CameraPlan, num_frames: int, scale: MotionScale, substeps: int) -> torch.Tensor:
    """World-to-camera poses (F, 4, 4) float32 of the classic path, integrated over evenly spaced times."""
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
