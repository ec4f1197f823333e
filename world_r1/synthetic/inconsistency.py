"""Ways to render one prompt 3D-inconsistently: the failures World-R1's rewards are meant to remove.

Every kind keeps each frame a plausible picture of the same scene, but breaks the single rigid 3D world that a moving
camera would see, so epipolar geometry between frames no longer holds:

* ``morph``: each frame is warped by a smooth displacement field that evolves over time (not i.i.d. flicker);
* ``swim``: textures slide and ripple over their surfaces (a uniform slide plus a wave in surface coordinates), each
  surface its own way, further and further over time: no rigid motion explains even one surface;
* ``drift``: the layers move against the camera path: objects drift sideways/up, ground and backdrop slide each in
  their own direction (each layer stays rigid, but no single camera motion explains them all).

All of them are zero at frame 0 and grow smoothly with time; ``severity`` in [0, 1] scales them (0: consistent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

INCONSISTENCY_KINDS = ("morph", "swim", "drift")

MORPH_PX = 8.0  # largest displacement of a severity-1 morph at 128 px (scaled with the frame width)
SWIM_CELLS = 3.0  # how many texture cells a severity-1 texture slides over the clip
RIPPLE_CELLS = 0.5  # largest ripple (texture cells) of a severity-1 texture swim, at the end of the clip
DRIFT_UNITS = 0.8  # how far (scene units) a severity-1 object drifts over the clip
SLIDE_UNITS = 1.2  # how far a severity-1 ground and backdrop slide over the clip under ``drift``
WAVE_UNITS = 2.0  # wavelength (scene units) of the ripple of a texture swim


@dataclass
class Distortion:
    """Per-frame departures from the rigid scene; ``None`` fields are absent. Primitives (P = 2 + B) are the ground,
    the backdrop, then the B objects; surface coordinates ``(u, v)`` are in scene units along a surface.

    ``box_shift`` (F, B, 3): world offset of each object per frame. ``texture_shift`` (F, P, 2): offset of each
    primitive's surface coordinates per frame. ``texture_wave`` (F, P, 2): amplitudes of a ripple that adds
    ``a_u sin(2 pi v / WAVE_UNITS + phase_u)`` to ``u`` and ``a_v sin(2 pi u / WAVE_UNITS + phase_v)`` to ``v``, with
    ``texture_phase`` (F, P, 2). ``warp_px`` (F, 2, H, W): image displacement (x, y) in pixels applied after rendering.
    """

    box_shift: torch.Tensor | None = None
    texture_shift: torch.Tensor | None = None
    texture_wave: torch.Tensor | None = None
    texture_phase: torch.Tensor | None = None
    warp_px: torch.Tensor | None = None


def _unit_vectors(count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 2) random directions in the plane."""
    angle = torch.rand(count, generator=generator) * 2 * math.pi
    return torch.stack([angle.cos(), angle.sin()], -1)


def evolving_field(
    num_frames: int, height: int, width: int, generator: torch.Generator, cells: int = 6
) -> torch.Tensor:
    """(F, 2, H, W) smooth displacement, zero at frame 0, blending into random fields at mid-clip and at the end
    (a smoothstep in time), normalised to a largest magnitude of 1."""
    keys = torch.randn(2, 2, cells, cells, generator=generator)
    keys = F.interpolate(keys, size=(height, width), mode="bicubic", align_corners=True)
    time = torch.linspace(0, 1, num_frames)
    first = (time * 2).clamp(0, 1)  # 0 -> 1 over the first half
    second = (time * 2 - 1).clamp(0, 1)  # 0 -> 1 over the second half
    smooth = lambda x: x * x * (3 - 2 * x)  # noqa: E731
    weights_mid = smooth(first) * (1 - smooth(second))
    weights_end = smooth(second)
    field = weights_mid[:, None, None, None] * keys[0] + weights_end[:, None, None, None] * keys[1]
    return field / field.norm(dim=1).amax().clamp_min(1e-6)


def make_distortion(
    kind: str,
    severity: float,
    num_frames: int,
    num_boxes: int,
    cell_sizes: torch.Tensor,
    size: tuple[int, int],
    seed: int,
) -> Distortion:
    """The ``kind`` inconsistency at ``severity`` for a scene with ``num_boxes`` objects.

    ``cell_sizes`` (2 + B,): texture cell size (scene units) of ground, backdrop and each object, so that a swim moves
    every surface by the same number of cells. ``size`` (H, W) of the frames; ``seed`` picks the random directions.
    """
    if kind not in INCONSISTENCY_KINDS:
        raise ValueError(f"kind must be one of {INCONSISTENCY_KINDS}, got {kind!r}.")
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}.")
    generator = torch.Generator().manual_seed(seed)
    time = torch.linspace(0, 1, num_frames)[:, None, None]  # (F, 1, 1)
    if kind == "morph":
        height, width = size
        field = evolving_field(num_frames, height, width, generator)
        return Distortion(warp_px=field * severity * MORPH_PX * width / 128)
    if kind == "swim":
        amount = cell_sizes[:, None] * severity * time  # (F, P, 1)
        return Distortion(
            texture_shift=amount * SWIM_CELLS * _unit_vectors(2 + num_boxes, generator),
            texture_wave=amount * RIPPLE_CELLS * _unit_vectors(2 + num_boxes, generator).abs(),
            texture_phase=(torch.rand(2 + num_boxes, 2, generator=generator) + 0.5 * time) * 2 * math.pi,  # travelling
        )
    sideways_or_up = _unit_vectors(num_boxes, generator)
    box_directions = torch.stack(  # x sideways, y up (negative: OpenCV y points down), never into the ground
        [sideways_or_up[:, 0], -sideways_or_up[:, 1].abs(), torch.zeros(num_boxes)], -1
    )
    slides = torch.zeros(2 + num_boxes, 2)
    slides[:2] = _unit_vectors(2, generator) * SLIDE_UNITS
    return Distortion(box_shift=time * severity * DRIFT_UNITS * box_directions, texture_shift=time * severity * slides)


def warp_frames(frames: torch.Tensor, displacement_px: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``frames`` (F, C, H, W) at pixel positions displaced by ``displacement_px`` (F, 2, H, W)."""
    _, _, height, width = frames.shape
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    grid_x = (xs + displacement_px[:, 0]) / width * 2 - 1
    grid_y = (ys + displacement_px[:, 1]) / height * 2 - 1
    grid = torch.stack([grid_x, grid_y], -1)
    return F.grid_sample(frames, grid, mode=mode, padding_mode="border", align_corners=False)
