"""Layered-depth clips cut from real photographs: the 3D rewards validated on natural image statistics.

Nothing can be downloaded here, but real photographs ship inside installed packages (scikit-image's sample images,
matplotlib's sample data). A clip stacks three fronto-parallel layers cut from photographs: a backdrop, a mid-ground
card and a foreground card with soft edges, at different depths, so a translating or orbiting camera sees parallax and
occlusion while a rotating or zooming one sees a homography. It is rendered exactly along the camera grammar's paths
(:func:`world_r1.camera.trajectory.camera_trajectory`, the same semantics as the noise warp and the trajectory reward),
or inconsistently: ``morph`` (the picture warps by a field evolving over time), ``swim`` (each layer's photograph slides
and ripples inside its card), ``drift`` (the layers move against the camera path), ``flicker`` (every frame jitters by
its own field: boiling) or ``static`` (the camera never moves). Conventions are :mod:`world_r1.camera.trajectory`'s.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from world_r1.camera.flow import zoomed
from world_r1.camera.grammar import STATIC, parse_camera
from world_r1.camera.trajectory import MotionScale, camera_trajectory, zoom_schedule
from world_r1.geometry.pose import intrinsics_from_fov
from world_r1.synthetic.inconsistency import MORPH_PX, evolving_field, warp_frames

#: photograph name -> (package that ships it, path inside the package)
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "brick": ("skimage", "data/brick.png"),
    "camera": ("skimage", "data/camera.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "coins": ("skimage", "data/coins.png"),
    "grass": ("skimage", "data/grass.png"),
    "gravel": ("skimage", "data/gravel.png"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "ihc": ("skimage", "data/ihc.png"),
    "moon": ("skimage", "data/moon.png"),
    "motorcycle": ("skimage", "data/motorcycle_left.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
}
#: photographs the rewards' settings may be tuned on, and the held-out ones that tests and benchmarks judge them on
TUNE_PHOTOS = ("astronaut", "brick", "camera", "coffee", "grace_hopper", "grass")
HELD_OUT_PHOTOS = ("chelsea", "coins", "gravel", "ihc", "moon", "motorcycle", "rocket")

#: every camera verb of the grammar and one chain; motions (and the zoom's focal lengths) are exact along
#: :func:`camera_trajectory` and :func:`zoom_schedule`
CAMERAS = (
    "Camera pans right.",
    "Camera tilts up.",
    "Camera trucks left.",
    "Camera cranes up.",
    "Camera dollies in.",
    "Camera pulls back.",
    "Camera orbits right.",
    "Camera trucks right, then pans left.",
    "Camera zooms in.",
)
CLIP_KINDS = ("consistent", "morph", "swim", "drift", "flicker", "static")
#: how far one segment at speed 1 goes in these scenes (backdrop 6 units ahead, cards at 3.5 and 2)
PHOTO_MOTION = MotionScale(
    rotation_deg=10.0, orbit_deg=12.0, translation=0.6, orbit_radius=3.5, zoom=1.35, dolly=0.6, convention="classic"
)
SWIM_FRACTION = 0.15  # how far (share of a layer's width) a severity-1 photograph slides inside its card
RIPPLE_FRACTION = 0.02  # largest ripple (share of a layer's width) of a severity-1 swim, at the end of the clip
RIPPLE_WAVES = 3.0  # ripple waves across a layer
DRIFT_UNITS = 0.35  # how far (scene units at depth 2) a severity-1 layer drifts against the camera
FLICKER_PX = 2.0  # per-frame jitter of a severity-1 flicker at 128 px (scaled with the width)


def photo_path(name: str) -> Path:
    """The file of photograph ``name`` inside its installed package."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photograph {name!r}; known: {sorted(PHOTOS)}.")
    package, relative = PHOTOS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"photograph {name!r} ships with the {package!r} package, which is not installed: "
            f"pip install {'scikit-image' if package == 'skimage' else package} (both come with world-r1[dev])."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"photograph {name!r} not found at {path}; this {package} version does not ship it.")
    return path


@lru_cache(maxsize=32)
def load_photo(name: str, long_side: int = 384) -> torch.Tensor:
    """Photograph ``name`` as (3, H, W) float32 in [0, 1], its long side resized to ``long_side`` (greys as RGB)."""
    image = Image.open(photo_path(name)).convert("RGB")
    scale = long_side / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class PhotoClipSpec:
    """One clip: three photographs (backdrop, mid-ground card, foreground card), a camera sentence of
    :data:`CAMERAS` (or any the grammar parses), how it is broken (``kind`` of :data:`CLIP_KINDS`, ``severity`` in
    [0, 1]) and rendered (``speed`` scales the whole camera path; frames, size, field of view, layout ``seed``)."""

    photos: tuple[str, str, str]
    camera: str
    kind: str = "consistent"
    severity: float = 1.0
    speed: float = 1.0
    num_frames: int = 17
    size: tuple[int, int] = (128, 128)
    fov_deg: float = 60.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in CLIP_KINDS:
            raise ValueError(f"kind must be one of {CLIP_KINDS}, got {self.kind!r}.")
        if not 0.0 <= self.severity <= 1.0 or self.speed <= 0 or self.num_frames < 2:
            raise ValueError("severity must be in [0, 1], speed > 0 and num_frames >= 2.")

    @property
    def prompt(self) -> str:
        """The clip's prompt, in the real prompt sets' form."""
        return f"{self.camera} {', '.join(self.photos[1:]).replace('_', ' ')} cards before a {self.photos[0]} wall."


@dataclass
class PhotoClip:
    """``video`` (F, 3, H, W) in [0, 1]; ``poses`` (F, 4, 4) world-to-camera and ``intrinsics`` (F, 3, 3) per frame
    of the camera that rendered it; ``depth`` (F, 1, H, W) z-depth of the rigid scene (before any 2D distortion)."""

    spec: PhotoClipSpec
    video: torch.Tensor
    poses: torch.Tensor
    intrinsics: torch.Tensor
    depth: torch.Tensor


@dataclass
class _Layer:
    texture: torch.Tensor  # (3, h, w)
    alpha: torch.Tensor | None  # (1, h, w); None: opaque, the photograph mirrored beyond its edges
    depth: float
    centre: torch.Tensor  # (2,) world x, y of the card's centre
    half: tuple[float, float]  # half width and height (world units)


def _card_alpha(height: int, width: int, softness: float = 0.06) -> torch.Tensor:
    """(1, h, w) a rounded card (superellipse) with soft edges."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    radius = (x.abs() ** 4 + y.abs() ** 4) ** 0.25
    return ((1 - radius) / softness).clamp(0, 1)[None]


def _crop(photo: torch.Tensor, aspect: float, generator: torch.Generator, share: float = 0.7) -> torch.Tensor:
    """A random crop of ``photo`` (3, H, W) of the given width/height ``aspect``, covering ``share`` of it."""
    _, height, width = photo.shape
    crop_h = int(min(height, width / aspect) * share)
    crop_w = int(crop_h * aspect)
    top = int(torch.randint(0, height - crop_h + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - crop_w + 1, (1,), generator=generator))
    return photo[:, top : top + crop_h, left : left + crop_w]


def _layers(spec: PhotoClipSpec) -> list[_Layer]:
    """Backdrop (6 units ahead, filling the first frame), mid-ground card (3.5) and foreground card (2), back to
    front, each from its own photograph; card positions and crops come from ``spec.seed``."""
    generator = torch.Generator().manual_seed(spec.seed)
    height, width = spec.size
    tan_half = math.tan(math.radians(spec.fov_deg) / 2)
    back_half = (6.0 * tan_half, 6.0 * tan_half * height / width)
    backdrop = _crop(load_photo(spec.photos[0]), back_half[0] / back_half[1], generator, share=1.0)
    side = 1.0 if float(torch.rand(1, generator=generator)) < 0.5 else -1.0
    layers = [_Layer(backdrop, None, 6.0, torch.zeros(2), back_half)]
    cards = ((spec.photos[1], 3.5, (0.8, 0.7), 0.55, -0.1), (spec.photos[2], 2.0, (0.4, 0.5), -0.35, 0.25))
    for photo, depth, half, x, y in cards:
        jitter = (torch.rand(2, generator=generator) - 0.5) * 0.2
        texture = _crop(load_photo(photo), half[0] / half[1], generator)
        alpha = _card_alpha(*texture.shape[1:])
        layers.append(_Layer(texture, alpha, depth, torch.tensor([side * x, y]) + jitter, half))
    return layers


def _camera(spec: PhotoClipSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera poses (F, 4, 4) and intrinsics (F, 3, 3) of the clip's camera."""
    height, width = spec.size
    base = intrinsics_from_fov(spec.fov_deg, height, width)
    plan = STATIC if spec.kind == "static" else parse_camera(spec.camera)
    scale = replace(
        PHOTO_MOTION,
        rotation_deg=PHOTO_MOTION.rotation_deg * spec.speed,
        orbit_deg=PHOTO_MOTION.orbit_deg * spec.speed,
        translation=PHOTO_MOTION.translation * spec.speed,
        dolly=PHOTO_MOTION.dolly * spec.speed,
        zoom=PHOTO_MOTION.zoom**spec.speed,
    )
    poses = camera_trajectory(plan, spec.num_frames, scale)
    return poses, zoomed(base, zoom_schedule(plan, spec.num_frames, scale))


def _layer_motion(spec: PhotoClipSpec, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per frame and layer: world offsets (F, L, 2) of a ``drift``; texture offsets (F, L, 2, in the layer's own
    coordinates, [-1, 1] across it) and ripple amplitudes (F, L, 2) of a ``swim``. All zero at frame 0, growing
    linearly, in random directions per layer."""
    generator = torch.Generator().manual_seed(spec.seed + 7919)
    time = torch.linspace(0, 1, spec.num_frames)[:, None, None]
    angle = torch.rand(count, generator=generator) * 2 * math.pi
    direction = torch.stack([angle.cos(), angle.sin()], -1)
    zero = torch.zeros(spec.num_frames, count, 2)
    if spec.kind == "drift":
        depth_scale = torch.tensor([6.0, 3.5, 2.0][:count])[:, None] / 2.0  # the same size in pixels at each depth
        return time * spec.severity * DRIFT_UNITS * direction * depth_scale, zero, zero
    if spec.kind == "swim":
        slide = time * spec.severity * SWIM_FRACTION * 2 * direction
        ripple = time * spec.severity * RIPPLE_FRACTION * 2 * (0.5 + torch.rand(count, 2, generator=generator))
        return zero, slide, ripple
    return zero, zero, zero


def _ripple(card: torch.Tensor, amplitude: torch.Tensor, phase: float) -> torch.Tensor:
    """(H, W, 2) texture displacement of a swim: a wave along y moving x and one along x moving y, travelling."""
    wave = torch.sin(2 * math.pi * RIPPLE_WAVES * card.flip(-1) / 2 + phase)
    return amplitude * wave


def _sample(image: torch.Tensor, coords: torch.Tensor, padding: str) -> torch.Tensor:
    """``image`` (C, h, w) at normalised coordinates ``coords`` (H, W, 2) in [-1, 1] -> (C, H, W)."""
    return F.grid_sample(image[None], coords[None], mode="bilinear", padding_mode=padding, align_corners=False)[0]


def render_photo_clip(spec: PhotoClipSpec, supersample: int = 2) -> PhotoClip:
    """Render ``spec`` (see the module docstring), ``supersample`` x ``supersample`` rays per pixel."""
    layers = _layers(spec)
    poses, intrinsics = _camera(spec)
    drift, swim, ripple = _layer_motion(spec, len(layers))
    height, width = spec.size
    big_h, big_w = height * supersample, width * supersample
    v, u = torch.meshgrid(
        (torch.arange(big_h) + 0.5) / supersample, (torch.arange(big_w) + 0.5) / supersample, indexing="ij"
    )
    pixels = torch.stack([u, v, torch.ones_like(u)], -1)  # (h, w, 3), pixel centres at half-integers
    frames, depths = [], []
    for k in range(spec.num_frames):
        rotation, translation = poses[k, :3, :3], poses[k, :3, 3]
        rays = pixels @ torch.linalg.inv(intrinsics[k]).T @ rotation  # world directions with camera z = 1
        centre = -rotation.T @ translation
        colour = torch.zeros(3, big_h, big_w)
        depth = torch.full((1, big_h, big_w), float("inf"))
        for index, layer in enumerate(layers):
            distance = (layer.depth - centre[2]) / rays[..., 2].clamp_min(1e-6)  # z-depth of the hit
            hit = centre[:2] + distance[..., None] * rays[..., :2]
            card = (hit - layer.centre - drift[k, index]) / torch.tensor(layer.half)  # the card's own coordinates
            offset = swim[k, index] + _ripple(card, ripple[k, index], 2 * math.pi * k / spec.num_frames + index)
            texture = _sample(layer.texture, card - offset, "reflection")  # a swim slides and ripples in the card
            alpha = torch.ones_like(texture[:1]) if layer.alpha is None else _sample(layer.alpha, card, "zeros")
            alpha = alpha * (distance > 0)
            colour = alpha * texture + (1 - alpha) * colour
            depth = torch.where(alpha > 0.5, distance[None], depth)
        frames.append(colour)
        depths.append(depth)
    video = F.avg_pool2d(torch.stack(frames), supersample).clamp(0, 1)
    depth = -F.max_pool2d(-torch.stack(depths), supersample)
    return PhotoClip(spec, _distort(video, spec), poses, intrinsics, depth)


def _distort(video: torch.Tensor, spec: PhotoClipSpec) -> torch.Tensor:
    """The 2D inconsistencies applied after rendering: ``morph`` and ``flicker``."""
    num_frames, _, height, width = video.shape
    generator = torch.Generator().manual_seed(spec.seed + 104729)
    if spec.kind == "morph":
        field = evolving_field(num_frames, height, width, generator)
        return warp_frames(video, field * spec.severity * MORPH_PX * width / 128).clamp(0, 1)
    if spec.kind == "flicker":
        fields = torch.cat([evolving_field(2, height, width, generator)[1:] for _ in range(num_frames)])
        fields[0] = 0  # the first frame is the clean one, as for every kind
        amplitude = spec.severity * FLICKER_PX * width / 128
        return warp_frames(video, fields * amplitude).clamp(0, 1)
    return video


def photo_clip_specs(
    split: str = "held_out",
    cameras: tuple[str, ...] = CAMERAS,
    num_frames: int = 17,
    size: tuple[int, int] = (128, 128),
) -> list[PhotoClipSpec]:
    """One consistent clip per camera of ``cameras`` for the photographs of ``split`` (``"tune"`` or
    ``"held_out"``): every camera gets a different backdrop and cards, rotating through the split's photographs."""
    if split not in ("tune", "held_out"):
        raise ValueError(f"split must be 'tune' or 'held_out', got {split!r}.")
    names = TUNE_PHOTOS if split == "tune" else HELD_OUT_PHOTOS
    count = len(names)
    return [
        PhotoClipSpec(
            (names[k % count], names[(k + 2) % count], names[(k + 4) % count]),
            camera,
            num_frames=num_frames,
            size=size,
            seed=k + (0 if split == "tune" else 1000),
        )
        for k, camera in enumerate(cameras)
    ]
