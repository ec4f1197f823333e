"""Synthetic camera-motion worlds: prompts whose words define a small 3D scene, rendered along the prompt's camera path.

A prompt is ``"<camera sentence> <scene sentence>"``, e.g. ``"Camera truck left. A red tower and a blue block in front
of a brick wall on a tiled floor."``. The camera sentence is parsed by :mod:`world_r1.camera.grammar` and sampled with
:func:`world_r1.camera.camera_trajectory`; the scene sentence names 1-3 objects (a colour and a shape each), a backdrop
and a ground, and these words alone define the scene: object sizes from the shape, slots from the object count and
order, texture layouts seeded by ``zlib.crc32`` of the words (stable across runs, unlike Python's ``hash``).

Geometry, in frame 0's camera coordinates (OpenCV axes, x right, y down, z forward, as in :mod:`world_r1.camera`):
the ground is the plane ``y = 1``, the backdrop the plane ``z = 8``, and the objects are axis-aligned boxes standing
on the ground 2.6-4.9 units ahead, so camera translation gives parallax and occlusion. Textures are mosaics of
coloured cells (bricks, tiles, planks) of ~6-16 pixels at 128 px: high-contrast corners for SIFT, yet simple enough
for a tiny video model to reproduce. Frames are ray cast at 2x and average-pooled (anti-aliasing).

:class:`SyntheticWorld` serves clips from the train or eval prompts; a share of them are rendered inconsistently
(:mod:`world_r1.synthetic.inconsistency`) under the very same prompt, so only the video tells them apart.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import astuple, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from world_r1.camera.flow import zoomed
from world_r1.camera.grammar import CameraPlan, plan_for_prompt
from world_r1.camera.trajectory import MotionScale, camera_trajectory, saved_motion, zoom_schedule
from world_r1.geometry.pose import intrinsics_from_fov
from world_r1.seeding import derive_seed
from world_r1.synthetic.inconsistency import (
    INCONSISTENCY_KINDS,
    WAVE_UNITS,
    Distortion,
    make_distortion,
    warp_frames,
)

# ---------------------------------------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Pattern:
    """A mosaic in surface coordinates ``(a, b)`` (scene units): rows ``cell[1]`` tall along ``b`` of cells
    ``cell[0]`` wide along ``a``, row ``r`` shifted by ``frac(r * stagger)`` cells, cells separated by ``gap``-wide
    lines of ``gap_colour``. Cell tones are shades of ``base``. ``transpose`` swaps ``(u, v)`` into ``(b, a)``, so
    rows run vertically (planks)."""

    base: tuple[float, float, float]
    cell: tuple[float, float]
    stagger: float = 0.0
    gap: float = 0.0
    gap_colour: tuple[float, float, float] = (0.1, 0.1, 0.1)
    transpose: bool = False


COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "blue": (0.12, 0.30, 0.90),
    "green": (0.12, 0.65, 0.18),
    "yellow": (0.95, 0.82, 0.12),
}
# (width along x, height, depth along z) of each shape's box, scene units
SHAPES: dict[str, tuple[float, float, float]] = {
    "tower": (0.5, 1.6, 0.5),
    "block": (1.0, 0.7, 0.6),
    "cube": (0.55, 0.55, 0.55),
}
BACKDROPS: dict[str, Pattern] = {
    "brick wall": Pattern((0.70, 0.30, 0.18), (1.0, 0.45), 0.5, 0.08, (0.88, 0.85, 0.78)),
    "stone wall": Pattern((0.62, 0.62, 0.58), (0.85, 0.6), 0.37, 0.08, (0.12, 0.12, 0.12)),
    "wooden fence": Pattern((0.62, 0.40, 0.20), (1.3, 0.5), 0.29, 0.08, (0.10, 0.06, 0.03), transpose=True),
}
GROUNDS: dict[str, Pattern] = {
    "tiled floor": Pattern((0.85, 0.75, 0.60), (0.5, 0.5), 0.0, 0.05, (0.25, 0.22, 0.20)),
    "grass lawn": Pattern((0.35, 0.65, 0.22), (0.4, 0.35), 0.23, 0.0),
    "gravel yard": Pattern((0.62, 0.56, 0.50), (0.35, 0.3), 0.61, 0.04, (0.15, 0.13, 0.12)),
}
OBJECT_CELL = (0.24, 0.24)  # object mosaic cells: ~9 px at 3 units, ~6 px at 4.5 units (128 px, 60 degrees)
GROUND_Y = 1.0  # the ground plane y = 1: one unit below frame 0's camera
BACKDROP_Z = 8.0  # the backdrop plane z = 8
# slots (x, z) of the box centres by object count, in the order the sentence names them
LAYOUTS: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((0.0, 3.6),),
    2: ((-0.8, 3.1), (0.8, 4.3)),
    3: ((-0.85, 2.9), (0.25, 4.6), (1.0, 3.6)),
}
_TONES = 5  # shades per material
_TABLE = 32  # the cell tone layout repeats every 32 cells each way (out of view at any distance)
_SHADE = (0.72, 1.15, 1.0)  # brightness of box faces facing x (sides), y (top), z (front/back)
_MISS = (0.5, 0.5, 0.5)  # colour of rays that hit nothing (none do for the camera sentences below)
SUPERSAMPLE = 2

CAMERA_SENTENCES: tuple[str, ...] = (
    "Camera fixed.",
    "Camera pan left.",
    "Camera pan right.",
    "Camera tilt up.",
    "Camera tilt down.",
    "Camera push in.",
    "Camera pull out.",
    "Camera truck left.",
    "Camera truck right.",
    "Camera crane up.",
    "Camera crane down.",
    "Camera orbit left.",
    "Camera orbit right.",
    "Camera push in, then pan right.",
    "Camera crane up, then tilt down.",
    "Camera truck right while panning left.",
)
# training scenes: every colour-shape pair, backdrop and ground appears in them
TRAIN_SCENES: tuple[str, ...] = (
    "A red tower in front of a brick wall on a tiled floor.",
    "A blue block in front of a stone wall on a grass lawn.",
    "A green cube in front of a wooden fence on a gravel yard.",
    "A yellow tower in front of a stone wall on a tiled floor.",
    "A red block and a blue tower in front of a wooden fence on a grass lawn.",
    "A green tower and a yellow cube in front of a brick wall on a gravel yard.",
    "A blue cube and a red tower in front of a stone wall on a tiled floor.",
    "A yellow block and a green tower in front of a brick wall on a grass lawn.",
    "A red cube, a blue block and a yellow tower in front of a wooden fence on a tiled floor.",
    "A green block, a red tower and a blue cube in front of a stone wall on a gravel yard.",
    "A yellow cube, a green tower and a red block in front of a brick wall on a tiled floor.",
    "A blue tower, a yellow block and a green cube in front of a wooden fence on a grass lawn.",
    "A red tower and a green block in front of a stone wall on a grass lawn.",
    "A blue block in front of a brick wall on a gravel yard.",
    "A yellow tower and a blue cube in front of a wooden fence on a tiled floor.",
    "A green cube and a red block in front of a stone wall on a gravel yard.",
    "A red cube in front of a wooden fence on a grass lawn.",
    "A yellow block, a blue tower and a red cube in front of a brick wall on a grass lawn.",
    "A green tower in front of a stone wall on a tiled floor.",
    "A blue tower and a yellow block in front of a brick wall on a tiled floor.",
    "A red block, a green cube and a blue tower in front of a wooden fence on a gravel yard.",
    "A yellow cube in front of a stone wall on a grass lawn.",
    "A blue cube, a green block and a yellow tower in front of a stone wall on a tiled floor.",
    "A green block and a red cube in front of a wooden fence on a tiled floor.",
)
# evaluation-only scenes: new combinations of the training words
HELD_OUT_SCENES: tuple[str, ...] = (
    "A blue tower and a red block in front of a brick wall on a gravel yard.",
    "A yellow tower in front of a wooden fence on a grass lawn.",
    "A red tower, a yellow cube and a blue block in front of a stone wall on a grass lawn.",
    "A green tower and a blue cube in front of a brick wall on a tiled floor.",
)
_HELD_OUT_PAIRS = 8  # (training scene, camera) pairs kept for evaluation on top of the held-out scenes

# ------------------------------------------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class SceneSpec:
    """What a scene sentence says: ``objects`` as (colour, shape) in order, the ``backdrop`` and the ``ground``."""

    objects: tuple[tuple[str, str], ...]
    backdrop: str
    ground: str


_SCENE = re.compile(r"^(?P<objects>.+?) in front of an? (?P<backdrop>[a-z ]+?) on an? (?P<ground>[a-z ]+?)\.?$")
_OBJECT = re.compile(r"^an? (?P<colour>[a-z]+) (?P<shape>[a-z]+)$")
_CAMERA_FIRST = re.compile(r"^\s*((?:the\s+)?camera\b[^.!?]*[.!?])\s*", re.IGNORECASE)


def parse_scene(sentence: str) -> SceneSpec:
    """``"A red tower and a blue cube in front of a brick wall on a tiled floor."`` -> :class:`SceneSpec`.
    Raises ValueError naming the unknown word or the expected form."""
    match = _SCENE.match(sentence.strip().lower())
    if match is None:
        raise ValueError(
            f"{sentence!r}: expected 'A <colour> <shape>[, a ... and a ...] in front of a <backdrop> on a <ground>.'"
        )
    names = [n.strip() for n in re.split(r",|\band\b", match["objects"]) if n.strip()]
    objects = []
    for name in names:
        item = _OBJECT.match(name)
        if item is None or item["colour"] not in COLOURS or item["shape"] not in SHAPES:
            raise ValueError(
                f"{sentence!r}: {name!r} is not 'a <colour> <shape>' with colour in {list(COLOURS)} "
                f"and shape in {list(SHAPES)}."
            )
        objects.append((item["colour"], item["shape"]))
    if not 1 <= len(objects) <= max(LAYOUTS):
        raise ValueError(f"{sentence!r}: name 1 to {max(LAYOUTS)} objects, not {len(objects)}.")
    if match["backdrop"] not in BACKDROPS or match["ground"] not in GROUNDS:
        raise ValueError(f"{sentence!r}: backdrop must be one of {list(BACKDROPS)}, ground one of {list(GROUNDS)}.")
    return SceneSpec(tuple(objects), match["backdrop"], match["ground"])


def split_prompt(prompt: str) -> tuple[str, str]:
    """``(camera sentence, scene sentence)`` of a world prompt; the camera sentence is ``"Camera fixed."`` when the
    prompt starts with none (a static camera, as :func:`plan_for_prompt` assumes)."""
    match = _CAMERA_FIRST.match(prompt)
    if match is None:
        return "Camera fixed.", prompt.strip()
    return match.group(1).strip(), prompt[match.end() :].strip()


@dataclass
class World:
    """Render-ready tensors of a scene with P = 2 + B primitives (ground, backdrop, then the B boxes).

    ``box_lo``/``box_hi`` (B, 3) box corners. ``params`` (P, 5): cell width, cell height, stagger, gap, transpose
    (0/1) of each primitive's :class:`Pattern`. ``palette`` (P * 3 * (N * N + 1), 3): the shaded colour of every
    cell of the tone layout (N x N), then of the gap, for each primitive and each face orientation (normal along x,
    y, z), so one lookup gives a pixel's colour.
    """

    spec: SceneSpec
    box_lo: torch.Tensor
    box_hi: torch.Tensor
    params: torch.Tensor
    palette: torch.Tensor

    @property
    def num_boxes(self) -> int:
        return len(self.box_lo)

    @property
    def cell_sizes(self) -> torch.Tensor:
        """(P,) the smaller cell side of each primitive's pattern, scene units."""
        return self.params[:, :2].amin(-1)


def word_seed(words: str) -> int:
    """A seed from words that is the same in every process and run (``zlib.crc32``, not the salted ``hash``)."""
    return zlib.crc32(words.encode("utf-8"))


def _tones(base: tuple[float, float, float]) -> torch.Tensor:
    """(K, 3) shades of ``base``, dark to light, for strong grey-level contrast within one colour family."""
    colour = torch.tensor(base)
    return torch.stack([colour * 0.3, colour * 0.55, colour * 0.8, colour, colour * 0.5 + 0.5]).clamp(0, 1)


def _object_pattern(colour: str) -> Pattern:
    base = COLOURS[colour]
    return Pattern(base, OBJECT_CELL, 0.5, 0.03, tuple(0.15 * c for c in base))


def _palette(pattern: Pattern, words: str, is_box: bool) -> torch.Tensor:
    """(3, N * N + 1, 3): colours of the pattern's cells (a random tone layout seeded by ``words``) and its gap,
    shaded for box faces facing x, y and z (planes are unshaded)."""
    generator = torch.Generator().manual_seed(word_seed(words))
    layout = torch.randint(0, _TONES, (_TABLE * _TABLE,), generator=generator)
    colours = torch.cat([_tones(pattern.base)[layout], torch.tensor([pattern.gap_colour])])
    shade = torch.tensor(_SHADE if is_box else (1.0, 1.0, 1.0))
    return (colours[None] * shade[:, None, None]).clamp(0, 1)


@lru_cache(maxsize=256)
def build_world(sentence: str) -> World:
    """The :class:`World` a scene sentence defines (cached: the tensors are shared, do not modify them)."""
    spec = parse_scene(sentence)
    boxes = []
    for (_, shape), (x, z) in zip(spec.objects, LAYOUTS[len(spec.objects)], strict=True):
        width, height, depth = SHAPES[shape]
        boxes.append(((x - width / 2, GROUND_Y - height, z - depth / 2), (x + width / 2, GROUND_Y, z + depth / 2)))
    patterns = [(GROUNDS[spec.ground], spec.ground), (BACKDROPS[spec.backdrop], spec.backdrop)]
    patterns += [(_object_pattern(colour), f"{colour} {shape}") for colour, shape in spec.objects]
    params = [(*p.cell, p.stagger, p.gap, float(p.transpose)) for p, _ in patterns]
    palettes = [_palette(p, words, is_box=k >= 2) for k, (p, words) in enumerate(patterns)]
    return World(
        spec=spec,
        box_lo=torch.tensor([lo for lo, _ in boxes]).reshape(-1, 3),
        box_hi=torch.tensor([hi for _, hi in boxes]).reshape(-1, 3),
        params=torch.tensor(params),
        palette=torch.stack(palettes).reshape(-1, 3),
    )


# ---------------------------------------------------------------------------------------------------------- rendering

# Surface coordinates by face orientation ("code": the axis of the face normal): x faces use (z, y), y faces (box
# tops, and the ground) use (x, z), z faces (box fronts and backs, and the backdrop) use (x, y).
_CODE_AXES = torch.tensor([[2, 1], [0, 2], [0, 1]])
_GROUND_CODE, _BACKDROP_CODE = 1, 2
_CORNERS = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=torch.bool)


@lru_cache(maxsize=8)
def _pixel_rays(height: int, width: int, fov_deg: float, supersample: int) -> torch.Tensor:
    """(H * s, W * s, 3) camera-frame rays ``K^-1 (u, v, 1)`` through an s x s grid of sub-pixels per pixel."""
    intrinsics = intrinsics_from_fov(fov_deg, height, width)
    v = (torch.arange(height * supersample) + 0.5) / supersample
    u = (torch.arange(width * supersample) + 0.5) / supersample
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv, torch.ones_like(uu)], -1) @ torch.linalg.inv(intrinsics).T


def _plane_hits(centre: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest of the ground and the backdrop along rays ``dirs`` (F, h, w, 3) from ``centre`` (F, 3): ray parameter
    (F, h, w) (``inf`` where neither is reached) and primitive index (0 ground, 1 backdrop)."""
    depths = []
    for axis, offset in ((1, GROUND_Y), (2, BACKDROP_Z)):
        component = dirs[..., axis]
        t = (offset - centre[:, axis, None, None]) / component.clamp_min(1e-9)
        depths.append(torch.where((component > 1e-9) & (t > 0), t, float("inf")))
    return torch.minimum(depths[0], depths[1]), (depths[1] < depths[0]).long()


def _screen_rect(
    lo: torch.Tensor, hi: torch.Tensor, poses: torch.Tensor, intrinsics: torch.Tensor, size: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Rectangle ``(top, bottom, left, right)`` of the (sub-)pixel grid ``size`` with ``intrinsics`` (F, 3, 3) that
    covers the box ``lo``/``hi`` (F, 3) in every frame (the whole grid if a corner is near or behind a camera), or
    None if the box is out of view in all frames."""
    corners = torch.where(_CORNERS, hi[:, None], lo[:, None])  # (F, 8, 3)
    camera = corners @ poses[:, :3, :3].transpose(1, 2) + poses[:, None, :3, 3]
    if bool((camera[..., 2] < 0.05).any()):
        return 0, size[0], 0, size[1]
    pixels = ((camera / camera[..., 2:]) @ intrinsics.transpose(-1, -2))[..., :2].reshape(-1, 2)
    left, top = (pixels.amin(0).floor() - 1).long().tolist()
    right, bottom = (pixels.amax(0).ceil() + 1).long().tolist()
    top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, size[0]), min(right, size[1])
    return None if top >= bottom or left >= right else (top, bottom, left, right)


def _box_hits(
    centre: torch.Tensor, dirs: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test of rays ``dirs`` (F, h, w, 3) from ``centre`` (F, 3) against the box ``lo``/``hi`` (F, 3): entry
    parameter (F, h, w) (``inf`` on a miss) and the axis of the face entered (F, h, w)."""
    enter = leave = axis = torch.empty(0)
    for k in range(3):
        component = dirs[..., k]
        inverse = 1.0 / torch.where(component.abs() < 1e-9, 1e-9, component)
        t1 = (lo[:, k, None, None] - centre[:, k, None, None]) * inverse
        t2 = (hi[:, k, None, None] - centre[:, k, None, None]) * inverse
        near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
        if k == 0:
            enter, leave, axis = near, far, torch.zeros_like(near, dtype=torch.long)
            continue
        axis = torch.where(near > enter, k, axis)
        enter, leave = torch.maximum(enter, near), torch.minimum(leave, far)
    hit = (enter <= leave) & (enter > 0)
    return torch.where(hit, enter, float("inf")), axis


def _cast(poses: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, rays: torch.Tensor, intrinsics: torch.Tensor):
    """Z-buffered ray casting of sub-pixel ``rays`` (F, h, w, 3) (``intrinsics`` (F, 3, 3) of that grid) from
    world-to-camera ``poses`` (F, 4, 4), with boxes ``lo``/``hi`` (F, B, 3). Returns per ray (F, h, w) the ray
    parameter (the z-depth: rays have camera z = 1), the primitive hit and its face orientation code, then the
    world-space rays (F, h, w, 3) and the camera centres (F, 3). A box is only tested on the screen rectangle it
    covers."""
    rotation = poses[:, :3, :3]
    centre = -(rotation.transpose(1, 2) @ poses[:, :3, 3:])[..., 0]
    dirs = (rays.reshape(len(poses), -1, 3) @ rotation).reshape(rays.shape)  # R^T applied to row vectors
    depth, prim = _plane_hits(centre, dirs)
    code = torch.where(prim == 0, _GROUND_CODE, _BACKDROP_CODE)
    for b in range(lo.shape[1]):
        rect = _screen_rect(lo[:, b], hi[:, b], poses, intrinsics, rays.shape[1:3])
        if rect is None:
            continue
        top, bottom, left, right = rect
        t, axis = _box_hits(centre, dirs[:, top:bottom, left:right], lo[:, b], hi[:, b])
        window = (slice(None), slice(top, bottom), slice(left, right))
        closer = t < depth[window]
        depth[window] = torch.where(closer, t, depth[window])
        prim[window] = torch.where(closer, 2 + b, prim[window])
        code[window] = torch.where(closer, axis, code[window])
    return depth, prim, code, dirs, centre


def _surface_offsets(lo: torch.Tensor, texture_shift: torch.Tensor | None) -> torch.Tensor:
    """(F, P * 3, 2) offsets added to the surface coordinates of each primitive and face orientation: box faces are
    textured from the box's corner ``lo`` (F, B, 3) (a drifting box carries its texture), planes from the world
    origin; plus the ``texture_shift`` (F or 1, P, 2) of a texture swim."""
    corners = torch.cat([lo.new_zeros(len(lo), 2, 3), lo], 1)  # (F, P, 3)
    offsets = -corners[:, :, _CODE_AXES]  # (F, P, 3, 2)
    if texture_shift is not None:
        offsets = offsets + texture_shift[:, :, None, :]
    return offsets.reshape(len(lo), -1, 2)


def _mosaic(world: World, prim: torch.Tensor, code: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(..., 3) colours of primitive ``prim`` (...) with face orientation ``code`` at surface coordinates ``u``,
    ``v`` (...) in scene units: the cell (or gap) of the primitive's :class:`Pattern` the point falls in."""
    shape = prim.shape
    cell_a, cell_b, stagger, gap, transpose = (
        world.params.index_select(0, prim.reshape(-1)).reshape(*shape, 5).unbind(-1)
    )
    swap = transpose > 0
    a, b = torch.where(swap, v, u), torch.where(swap, u, v)
    row_position = b / cell_b
    row = row_position.floor()
    column_position = a / cell_a + torch.remainder(row * stagger, 1.0)
    column = column_position.floor()
    in_gap = ((column_position - column) * cell_a < gap) | ((row_position - row) * cell_b < gap)
    cell = torch.remainder(row, _TABLE) * _TABLE + torch.remainder(column, _TABLE)
    cell = torch.where(in_gap, _TABLE * _TABLE, cell).long()
    index = (prim * 3 + code) * (_TABLE * _TABLE + 1) + cell
    return world.palette.index_select(0, index.reshape(-1)).reshape(*shape, 3)


def _ripple(u: torch.Tensor, v: torch.Tensor, prim: torch.Tensor, distortion: Distortion):
    """Surface coordinates (F, h, w) rippled by ``distortion.texture_wave`` (see :class:`Distortion`)."""
    num_frames = len(prim)
    index = prim.reshape(num_frames, -1, 1).expand(-1, -1, 2)
    amplitude = distortion.texture_wave.expand(num_frames, -1, -1).gather(1, index).reshape(*prim.shape, 2)
    phase = distortion.texture_phase.gather(1, index).reshape(*prim.shape, 2)
    wave = 2 * math.pi / WAVE_UNITS
    return (
        u + amplitude[..., 0] * torch.sin(v * wave + phase[..., 0]),
        v + amplitude[..., 1] * torch.sin(u * wave + phase[..., 1]),
    )


def render_world(
    world: World,
    poses: torch.Tensor,
    height: int,
    width: int,
    fov_deg: float = 60.0,
    distortion: Distortion | None = None,
    supersample: int = SUPERSAMPLE,
    texture_scale: float = 1.0,
    zooms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray cast ``world`` from world-to-camera ``poses`` (F, 4, 4), each frame's focal length scaled by ``zooms``
    (F,) where the camera zooms (:func:`world_r1.camera.zoom_schedule`): colour (F, 3, H, W) in [0, 1] and z-depth
    (F, 1, H, W) (the nearest sub-pixel's; ``inf`` where nothing is hit), float32.

    Each pixel averages ``supersample``^2 sub-pixel rays (anti-aliasing). ``distortion`` moves boxes and textures
    per frame and warps the result (:mod:`world_r1.synthetic.inconsistency`). ``texture_scale`` enlarges every
    mosaic cell (and gap) by that factor.
    """
    distortion = distortion or Distortion()
    poses = poses.float()
    num_frames, s = len(poses), supersample
    zooms = torch.ones(num_frames) if zooms is None else zooms.float()
    lens = torch.stack([zooms, zooms, torch.ones_like(zooms)], -1)[:, None, None]  # (F, 1, 1, 3)
    rays = _pixel_rays(height, width, float(fov_deg), s) / lens  # (K Z)^-1 (u, v, 1): a z times narrower view
    intrinsics = zoomed(intrinsics_from_fov(fov_deg, height, width) * torch.tensor([[s], [s], [1.0]]), zooms)
    lo = world.box_lo.expand(num_frames, -1, -1)
    hi = world.box_hi.expand(num_frames, -1, -1)
    if distortion.box_shift is not None:
        lo, hi = lo + distortion.box_shift, hi + distortion.box_shift
    depth, prim, code, dirs, centre = _cast(poses, lo, hi, rays, intrinsics)
    hit = torch.isfinite(depth)
    x, y, z = (centre[:, None, None] + torch.where(hit, depth, 0.0)[..., None] * dirs).unbind(-1)
    offsets = _surface_offsets(lo, distortion.texture_shift)
    index = (prim * 3 + code).reshape(num_frames, -1, 1).expand(-1, -1, 2)
    offset = offsets.gather(1, index).reshape(*prim.shape, 2)
    u = torch.where(code == 0, z, x) + offset[..., 0]
    v = torch.where(code == 1, z, y) + offset[..., 1]
    if distortion.texture_wave is not None:
        u, v = _ripple(u, v, prim, distortion)
    surface = _mosaic(world, prim, code, u / texture_scale, v / texture_scale)
    colour = torch.where(hit[..., None], surface, torch.tensor(_MISS))
    colour = F.avg_pool2d(colour.permute(0, 3, 1, 2), s).clamp(0, 1)
    depth = -F.max_pool2d(-depth[:, None], s)
    if distortion.warp_px is not None:
        colour = warp_frames(colour, distortion.warp_px).clamp(0, 1)
        depth = warp_frames(depth, distortion.warp_px, mode="nearest")
    return colour.contiguous(), depth.contiguous()


# ------------------------------------------------------------------------------------------------------------ prompts


def _default_motion() -> MotionScale:
    """Clearly visible yet in-view motion for the world scenes: pans/tilts of 20 degrees (a third of the view), 0.6
    units of travel (crane down stays 0.4 above the ground, push in 2 units short of the nearest object), orbits of
    25 degrees around a pivot 4 units ahead (between the objects); the classic convention, which the shipped mini Wan
    was trained on ("orbit left" moves left around the pivot)."""
    return MotionScale(
        rotation_deg=20.0, orbit_deg=25.0, translation=0.6, orbit_radius=4.0, dolly=0.6, convention="classic"
    )


@dataclass
class WorldConfig:
    """How :class:`SyntheticWorld` renders clips.

    Args:
        height, width: frame size in pixels.
        num_frames: frames per clip (9 pixel frames are 3 latent frames of Wan's VAE).
        fov_deg: horizontal field of view of the camera (the same as the rewards' assumed ``fov_deg``).
        inconsistent_share: share of clips rendered inconsistently (same prompt).
        seed: seeds which prompt, consistency and distortion every clip index gets.
        motion: how far one camera motion goes; the trajectory reward should use the same scale.
        severity_range: inconsistent clips draw their severity uniformly from this range within (0, 1].
        texture_scale: every mosaic cell is this many times larger; coarser textures are easier for a small VAE to
            compress (the mini Wan uses 2) and give fewer, larger keypoints.
    """

    height: int = 128
    width: int = 128
    num_frames: int = 9
    fov_deg: float = 60.0
    inconsistent_share: float = 0.4
    seed: int = 0
    motion: MotionScale = field(default_factory=_default_motion)
    severity_range: tuple[float, float] = (0.5, 1.0)
    texture_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError(f"height and width must be >= 16 pixels (e.g. 128), got {self.height}x{self.width}.")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2 (e.g. 9), got {self.num_frames}.")
        if not 1.0 < self.fov_deg < 179.0:
            raise ValueError(f"fov_deg must be in (1, 179) degrees (e.g. 60.0), got {self.fov_deg}.")
        if not 0.0 <= self.inconsistent_share <= 1.0:
            raise ValueError(f"inconsistent_share must be in [0, 1] (e.g. 0.4), got {self.inconsistent_share}.")
        if not 0.25 <= self.texture_scale <= 8.0:
            raise ValueError(f"texture_scale must be in [0.25, 8] (e.g. 1.0 or 2.0), got {self.texture_scale}.")
        if not isinstance(self.motion, MotionScale):
            raise ValueError(f"motion must be a MotionScale (e.g. {_default_motion()}), got {self.motion!r}.")
        if not 0.0 <= self.motion.translation <= 0.9:
            raise ValueError(
                f"motion.translation must be in [0, 0.9] (e.g. 0.6) so a crane down stays above the ground and a "
                f"push in stays in front of the objects, got {self.motion.translation}."
            )
        if not 2.5 <= self.motion.orbit_radius <= 6.0:
            raise ValueError(
                f"motion.orbit_radius must be in [2.5, 6] (e.g. 4.0) so orbits circle around the objects, got "
                f"{self.motion.orbit_radius}."
            )
        self.severity_range = low, high = tuple(float(s) for s in self.severity_range)
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"severity_range must satisfy 0 < low <= high <= 1 (e.g. (0.5, 1.0)), got {(low, high)}.")

    @classmethod
    def from_dict(cls, settings: dict) -> WorldConfig:
        """The config a YAML file or a model manifest records (``motion`` as a mapping, one saved before conventions
        existed read as the classic path it was rendered with; unknown keys are errors)."""
        settings = dict(settings)
        if isinstance(settings.get("motion"), dict):
            settings["motion"] = MotionScale(**saved_motion(settings["motion"]))
        return cls(**settings)


def world_prompts(split: str) -> list[str]:
    """The prompts of ``split``: ``"train"`` (every training scene with every camera sentence but a few held-out
    pairs) or ``"eval"`` (the held-out scenes, new combinations of training words, with 3 cameras each, and the
    held-out pairs; together they use every camera sentence). The two share no prompt."""
    cameras = CAMERA_SENTENCES
    held_pairs = [(TRAIN_SCENES[(3 * m + 1) % len(TRAIN_SCENES)], cameras[8 + m]) for m in range(_HELD_OUT_PAIRS)]
    if split == "train":
        return [f"{c} {s}" for s in TRAIN_SCENES for c in cameras if (s, c) not in held_pairs]
    if split == "eval":
        held_scenes = [
            (s, cameras[(3 * j + k) % len(cameras)]) for j, s in enumerate(HELD_OUT_SCENES) for k in range(3)
        ]
        return [f"{c} {s}" for s, c in held_scenes + held_pairs]
    raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")


_HEADER = (
    "# Mini-world {split} prompts for world-r1 (world_r1.synthetic.write_prompt_files writes this file): a camera "
    "sentence, then the scene. One prompt a line; '#' lines are comments."
)


def prompt_file_text(split: str) -> str:
    """The text of ``mini_<split>.txt``: a ``#`` header line, then one prompt a line."""
    return "\n".join([_HEADER.format(split=split), *world_prompts(split)]) + "\n"


def write_prompt_files(directory: str | Path) -> list[Path]:
    """Write ``mini_train.txt`` and ``mini_eval.txt`` into ``directory`` (e.g. ``world_r1/prompts``)."""
    paths = []
    for split in ("train", "eval"):
        path = Path(directory) / f"mini_{split}.txt"
        path.write_text(prompt_file_text(split), encoding="utf-8")
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------------------ clips


@lru_cache(maxsize=64)
def _trajectory(plan: CameraPlan, num_frames: int, scale: tuple[float, ...]) -> torch.Tensor:
    return camera_trajectory(plan, num_frames, MotionScale(*scale))


def render_prompt(
    prompt: str, config: WorldConfig | None = None, severity: float = 0.0, kind: str | None = None, seed: int = 0
) -> dict:
    """Render a world prompt. ``severity`` 0 gives the consistent clip (identical for equal prompts); above 0, the
    ``kind`` inconsistency (one of ``INCONSISTENCY_KINDS``; None: picked by ``seed``) with directions from ``seed``.

    Returns ``video`` (F, 3, H, W) in [0, 1], ``depth`` (F, 1, H, W), ``poses`` (F, 4, 4) world-to-camera,
    ``intrinsics`` (3, 3) of frame 0, ``zooms`` (F,) (each frame's focal length over frame 0's), ``prompt``,
    ``camera`` (its camera sentence), ``consistent``, ``severity`` and ``kind`` (``"none"`` when consistent).
    """
    config = config or WorldConfig()
    if kind is not None and kind not in INCONSISTENCY_KINDS:
        raise ValueError(f"kind must be one of {INCONSISTENCY_KINDS} or None, got {kind!r}.")
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be in [0, 1] (0: consistent), got {severity}.")
    camera, scene = split_prompt(prompt)
    world = build_world(scene)
    plan = plan_for_prompt(prompt)
    poses = _trajectory(plan, config.num_frames, astuple(config.motion))
    zooms = zoom_schedule(plan, config.num_frames, config.motion)
    distortion = None
    if severity > 0:
        kind = kind or INCONSISTENCY_KINDS[seed % len(INCONSISTENCY_KINDS)]
        size = (config.height, config.width)
        distortion = make_distortion(kind, severity, config.num_frames, world.num_boxes, world.cell_sizes, size, seed)
    video, depth = render_world(
        world,
        poses,
        config.height,
        config.width,
        config.fov_deg,
        distortion,
        texture_scale=config.texture_scale,
        zooms=zooms,
    )
    return {
        "video": video,
        "depth": depth,
        "poses": poses.clone(),
        "intrinsics": intrinsics_from_fov(config.fov_deg, config.height, config.width),
        "zooms": zooms,
        "prompt": prompt,
        "camera": camera,
        "consistent": severity == 0,
        "severity": float(severity),
        "kind": kind if severity > 0 else "none",
    }


class SyntheticWorld(Dataset):
    """Clips of the ``split`` prompts rendered on the fly; item ``i`` is a pure function of (config.seed, split, i).

    Each item: ``video`` (F, 3, H, W) float32 in [0, 1], ``prompt``, ``consistent``, ``camera`` (the camera sentence),
    ``severity`` (0 when consistent) and ``kind`` (``"none"``, or the inconsistency). An inconsistent clip has the
    same prompt as a consistent one: only the pixels differ.
    """

    def __init__(self, config: WorldConfig | None = None, split: str = "train", length: int = 4096) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1 (e.g. 4096), got {length}.")
        self.config = config or WorldConfig()
        self.split = split
        self.prompts = world_prompts(split)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def describe(self, index: int) -> dict:
        """Item ``index``'s metadata without rendering: prompt, camera, consistent, severity, kind and its seed."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a SyntheticWorld of length {self.length}.")
        seed = derive_seed(self.config.seed, f"world-{self.split}", index)
        generator = torch.Generator().manual_seed(seed)
        prompt = self.prompts[int(torch.randint(len(self.prompts), (1,), generator=generator))]
        draw, severity_draw = torch.rand(2, generator=generator).tolist()
        consistent = draw >= self.config.inconsistent_share
        low, high = self.config.severity_range
        severity = 0.0 if consistent else low + (high - low) * severity_draw
        kind = "none" if consistent else INCONSISTENCY_KINDS[seed % len(INCONSISTENCY_KINDS)]
        camera, _ = split_prompt(prompt)
        return {
            "prompt": prompt,
            "camera": camera,
            "consistent": consistent,
            "severity": severity,
            "kind": kind,
            "seed": seed,
        }

    def __getitem__(self, index: int) -> dict:
        meta = self.describe(index)
        kind = None if meta["consistent"] else meta["kind"]
        clip = render_prompt(meta["prompt"], self.config, meta["severity"], kind, meta["seed"] % 2**31)
        return {key: clip[key] for key in ("video", "prompt", "consistent", "camera", "severity", "kind")}
