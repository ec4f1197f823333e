"""Clips closer to real camera footage than the layered photographs: what a camera-path estimate is judged on.

The layered clips (:mod:`world_r1.synthetic.photos`) are three fronto-parallel cards seen through an exact pinhole:
depth takes three values, the lens is the one assumed, nothing moves but the camera and the frames are lossless. A
path estimate that reads them right can still fail on real video (World-R1's own outputs: travel read as turning, pans
read as travel, matches lost half way). A footage clip removes each of those shortcuts:

* **continuous depth**: a ray-cast room of real photographs: a ground plane receding to the horizon, a back wall, and
  boxes standing on the ground at several depths (their faces slant away from the camera, and occlude each other);
* **an unknown lens**: the field of view drawn per clip (45-80 degrees) and a radial distortion the estimate is not
  told about;
* **moving subjects**: boxes that travel on the ground on paths of their own;
* **a real camera's image**: 2x2 supersampling, a slow exposure drift, sensor noise and JPEG compression per frame;
* **the release's camera path**: :func:`~world_r1.camera.trajectory.camera_trajectory` under the release convention
  (its units: 220 of travel, 600 of push-in, 14 degree pans, 24 degree orbits) over 81 frames, the scene sized so the
  travel shows parallax (the nearest box at 900 units, the back wall at 2500-4000).

Conventions are :mod:`world_r1.camera.trajectory`'s (OpenCV axes, world = frame 0's camera, y down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from world_r1.camera.grammar import plan_for_prompt
from world_r1.camera.trajectory import MotionScale, camera_to_world, camera_trajectory
from world_r1.geometry.pose import intrinsics_from_fov
from world_r1.synthetic.photos import HELD_OUT_PHOTOS, TUNE_PHOTOS, load_photo
from world_r1.video_io import jpeg_round_trip

#: the release's single movements and chains of them as its training prompts open ("Camera move left, then pan left.")
SINGLE_CAMERAS = (
    "Camera push in.",
    "Camera pull out.",
    "Camera move left.",
    "Camera move right.",
    "Camera pan left.",
    "Camera pan right.",
    "Camera orbit left.",
    "Camera orbit right.",
)
CHAINED_CAMERAS = (
    "Camera move left, then pan right.",
    "Camera push in, then move right.",
    "Camera pan left, then pull out.",
    "Camera orbit right, then push in.",
    "Camera move right, pull out, then pan left.",
    "Camera push in, then orbit left.",
)
FOOTAGE_CAMERAS = SINGLE_CAMERAS + CHAINED_CAMERAS
CAMERA_HEIGHT = 160.0  # the ground lies this far below the camera (world units)


@dataclass(frozen=True)
class FootageSpec:
    """One clip: its camera sentence, the photographs it is built from (ground, wall, boxes), how it is filmed
    (frames, size, field of view, lens distortion ``k1``, JPEG ``quality``), whether subjects move, and its ``seed``
    (the layout of boxes and subjects, the noise)."""

    camera: str
    photos: tuple[str, ...]
    num_frames: int = 81
    size: tuple[int, int] = (240, 416)
    fov_deg: float = 60.0
    k1: float = 0.0
    quality: int = 60
    moving_subjects: int = 2
    seed: int = 0


@dataclass
class Footage:
    """A rendered clip: ``video`` (F, 3, H, W) in [0, 1], the true world-to-camera ``poses`` (F, 4, 4) and
    ``intrinsics`` (3, 3) of the pinhole before distortion."""

    video: torch.Tensor
    poses: torch.Tensor
    intrinsics: torch.Tensor
    spec: FootageSpec


@dataclass
class _Rect:
    """An axis-aligned textured rectangle: the plane ``x[axis] = offset``, bounds on the other two axes (``u`` first,
    ``v`` second, in increasing axis order), a texture and its world size (texture repeats every ``period`` units)."""

    axis: int
    offset: float
    u: tuple[float, float]
    v: tuple[float, float]
    texture: int
    period: tuple[float, float]


def footage_specs(
    split: str = "held_out", cameras: tuple[str, ...] = FOOTAGE_CAMERAS, **overrides
) -> list[FootageSpec]:
    """One clip per camera of ``cameras`` with the photographs of ``split`` (``"tune"`` or ``"held_out"``): the lens,
    distortion, compression and layout drawn per clip from the split's seed, so the two splits share no draw."""
    if split not in ("tune", "held_out"):
        raise ValueError(f"split must be 'tune' or 'held_out', got {split!r}.")
    photos = TUNE_PHOTOS if split == "tune" else HELD_OUT_PHOTOS
    rng = np.random.default_rng(1 if split == "tune" else 2)
    specs = []
    for index, camera in enumerate(cameras):
        order = rng.permutation(len(photos))
        specs.append(
            FootageSpec(
                camera=camera,
                photos=tuple(photos[i] for i in order[:5]),
                fov_deg=float(rng.uniform(45.0, 80.0)),
                k1=float(rng.uniform(-0.08, 0.04)),
                quality=int(rng.integers(35, 80)),
                seed=int(rng.integers(0, 2**31 - 1)) + index,
                **overrides,
            )
        )
    return specs


def _scene(spec: FootageSpec, generator: torch.Generator) -> tuple[list[_Rect], list[tuple[_Rect, ...]]]:
    """The static rectangles (ground, wall, boxes) and each moving subject's rectangles at frame 0."""

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    wall = uniform(2500.0, 4000.0)
    rects = [
        _Rect(1, CAMERA_HEIGHT, (-6000.0, 6000.0), (-1500.0, wall + 1.0), 0, (500.0, 500.0)),  # ground: x, z
        _Rect(2, wall, (-7000.0, 7000.0), (-5000.0, CAMERA_HEIGHT + 1.0), 1, (2200.0, 1400.0)),  # wall: x, y
    ]
    for _ in range(5):
        depth, side = uniform(900.0, 2200.0), uniform(-1100.0, 1100.0)
        width, height = uniform(120.0, 420.0), uniform(150.0, 600.0)
        rects += _box(side, depth, width, height, 2 + int(torch.randint(0, 3, (), generator=generator)))
    subjects = []
    for _ in range(spec.moving_subjects):
        depth, side = uniform(1000.0, 2000.0), uniform(-700.0, 700.0)
        subjects.append(tuple(_box(side, depth, uniform(80.0, 160.0), uniform(120.0, 260.0), 4)))
    return rects, subjects


def _box(x: float, z: float, width: float, height: float, texture: int) -> list[_Rect]:
    """The four sides and the top of a box standing on the ground, centred at ``(x, z)``."""
    half = width / 2
    top = CAMERA_HEIGHT - height
    span = (width, height)
    return [
        _Rect(2, z - half, (x - half, x + half), (top, CAMERA_HEIGHT), texture, span),  # front: x, y
        _Rect(2, z + half, (x - half, x + half), (top, CAMERA_HEIGHT), texture, span),  # back
        _Rect(0, x - half, (top, CAMERA_HEIGHT), (z - half, z + half), texture, (height, width)),  # left: y, z
        _Rect(0, x + half, (top, CAMERA_HEIGHT), (z - half, z + half), texture, (height, width)),  # right
        _Rect(1, top, (x - half, x + half), (z - half, z + half), texture, span),  # top: x, z
    ]


def _moved(rect: _Rect, shift: tuple[float, float]) -> _Rect:
    """``rect`` moved by ``(dx, dz)`` on the ground."""
    dx, dz = shift
    offset = rect.offset + (dx if rect.axis == 0 else dz if rect.axis == 2 else 0.0)
    axes = [a for a in range(3) if a != rect.axis]
    moves = {0: dx, 1: 0.0, 2: dz}
    u = (rect.u[0] + moves[axes[0]], rect.u[1] + moves[axes[0]])
    v = (rect.v[0] + moves[axes[1]], rect.v[1] + moves[axes[1]])
    return _Rect(rect.axis, offset, u, v, rect.texture, rect.period)


def _rays(spec: FootageSpec, intrinsics: torch.Tensor, oversample: int) -> torch.Tensor:
    """Unit-z ray directions (H*s, W*s, 3) in the camera frame of a lens with radial distortion ``k1``: the pixel at
    distorted normalised position ``d`` sees the ray ``u`` with ``d = u (1 + k1 |u|^2)`` (inverted by iteration)."""
    height, width = spec.size[0] * oversample, spec.size[1] * oversample
    ys = (torch.arange(height, dtype=torch.float64) + 0.5) / oversample
    xs = (torch.arange(width, dtype=torch.float64) + 0.5) / oversample
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    f, cx, cy = float(intrinsics[0, 0]), float(intrinsics[0, 2]), float(intrinsics[1, 2])
    distorted = torch.stack([(x - cx) / f, (y - cy) / f], -1)
    undistorted = distorted.clone()
    for _ in range(8):
        undistorted = distorted / (1 + spec.k1 * undistorted.square().sum(-1, keepdim=True))
    return torch.cat([undistorted, torch.ones_like(undistorted[..., :1])], -1)


def _render(
    rects: list[_Rect], textures: list[torch.Tensor], origin: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """Colours (N, 3) of world rays ``origin + s directions`` (N, 3): the nearest rectangle hit (all rectangles at
    once), its texture sampled bilinearly; rays that hit nothing see a pale sky."""
    axis = torch.tensor([r.axis for r in rects])
    others = torch.tensor([[a for a in range(3) if a != r.axis] for r in rects])  # (M, 2)
    offset = torch.tensor([r.offset for r in rects], dtype=directions.dtype)
    bounds = torch.tensor([[*r.u, *r.v] for r in rects], dtype=directions.dtype)  # (M, 4)
    along = directions[:, axis]  # (N, M)
    along = torch.where(along.abs() < 1e-9, torch.full_like(along, 1e-9), along)
    s = (offset - origin[axis]) / along
    u = origin[others[:, 0]] + s * directions[:, others[:, 0]]
    v = origin[others[:, 1]] + s * directions[:, others[:, 1]]
    inside = (s > 1e-3) & (u >= bounds[:, 0]) & (u <= bounds[:, 1]) & (v >= bounds[:, 2]) & (v <= bounds[:, 3])
    s = torch.where(inside, s, torch.full_like(s, float("inf")))
    nearest, which = s.min(1)
    hit = torch.isfinite(nearest)
    rows = torch.arange(len(directions))
    u, v = u[rows, which], v[rows, which]
    colour = torch.tensor([0.75, 0.82, 0.9]).repeat(len(directions), 1)
    for index, rect in enumerate(rects):
        mine = hit & (which == index)
        if not bool(mine.any()):
            continue
        tu = ((u[mine] - rect.u[0]) / rect.period[0]) % 1.0
        tv = ((v[mine] - rect.v[0]) / rect.period[1]) % 1.0
        grid = torch.stack([tu, tv], -1).float() * 2 - 1  # axes (u, v) index the texture's (width, height)
        if rect.axis == 0:  # side faces run (y, z): show the picture upright, z across
            grid = grid.flip(-1)
        texture = textures[rect.texture]
        sampled = F.grid_sample(texture[None], grid[None, None], align_corners=False, padding_mode="reflection")
        colour[mine] = sampled[0, :, 0].T
    return colour


def render_footage(spec: FootageSpec, motion: MotionScale | None = None, oversample: int = 2) -> Footage:
    """Render ``spec`` along its camera sentence's path under ``motion`` (the release's by default)."""
    generator = torch.Generator().manual_seed(spec.seed)
    motion = motion or MotionScale()
    poses = camera_trajectory(plan_for_prompt(spec.camera), spec.num_frames, motion).double()
    intrinsics = intrinsics_from_fov(spec.fov_deg, *spec.size).double()
    textures = [load_photo(name, 256) for name in spec.photos]
    rects, subjects = _scene(spec, generator)
    velocities = [
        (float(torch.randn((), generator=generator)) * 6.0, float(torch.randn((), generator=generator)) * 4.0)
        for _ in subjects
    ]
    rays = _rays(spec, intrinsics, oversample).reshape(-1, 3).float()
    drift = 0.08 * float(torch.rand((), generator=generator)) - 0.04
    frames = []
    for index, pose in enumerate(camera_to_world(poses)):
        moving = [
            _moved(r, (vx * index, vz * index)) for box, (vx, vz) in zip(subjects, velocities, strict=True) for r in box
        ]
        directions = rays @ pose[:3, :3].T.float()
        colour = _render(rects + moving, textures, pose[:3, 3].float(), directions)
        image = colour.T.reshape(3, spec.size[0] * oversample, spec.size[1] * oversample)
        image = F.avg_pool2d(image[None], oversample)[0] if oversample > 1 else image
        image = image * (1.0 + drift * math.sin(math.pi * index / max(spec.num_frames - 1, 1)))
        image = image + 0.01 * torch.randn(image.shape, generator=generator)
        frames.append(jpeg_round_trip(image, spec.quality))
    return Footage(torch.stack(frames), poses.float(), intrinsics.float(), spec)
