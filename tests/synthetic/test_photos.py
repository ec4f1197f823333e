"""Layered-depth clips cut from real photographs: where the photographs come from, that the renderer is exact (depth
layers, a static camera, frame 0 untouched by every inconsistency, a true zoom) and that the geometry core recovers
the rendered camera motion of every verb."""

import math
from dataclasses import replace

import pytest
import torch

from world_r1.camera.trajectory import relative_motion
from world_r1.geometry import GeometrySettings, analyse
from world_r1.geometry.pose import relative_pose, rotation_angle_deg
from world_r1.synthetic import photos
from world_r1.synthetic.photos import (
    CLIP_KINDS,
    HELD_OUT_PHOTOS,
    TUNE_PHOTOS,
    PhotoClipSpec,
    load_photo,
    photo_clip_specs,
    render_photo_clip,
)


def test_every_photograph_ships_and_the_splits_are_disjoint():
    assert not set(TUNE_PHOTOS) & set(HELD_OUT_PHOTOS)
    for name in (*TUNE_PHOTOS, *HELD_OUT_PHOTOS):
        image = load_photo(name, 64)
        assert image.shape[0] == 3 and max(image.shape[1:]) == 64 and image.min() >= 0 and image.max() <= 1
        assert image.std() > 0.03, name  # a real picture, not a flat file


def test_missing_package_and_unknown_photograph_name_the_fix(monkeypatch):
    with pytest.raises(ValueError, match="unknown photograph"):
        photos.photo_path("mona_lisa")
    monkeypatch.setattr(photos.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install scikit-image"):
        photos.photo_path("chelsea")


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="kind"):
        PhotoClipSpec(("chelsea", "coins", "moon"), "Camera pans right.", kind="melt")
    with pytest.raises(ValueError, match="severity"):
        PhotoClipSpec(("chelsea", "coins", "moon"), "Camera pans right.", severity=2.0)


@pytest.fixture(scope="module")
def truck() -> PhotoClipSpec:
    return PhotoClipSpec(("chelsea", "coins", "moon"), "Camera trucks left.", num_frames=9, size=(64, 64), seed=3)


def test_layers_sit_at_their_depths_and_a_static_camera_renders_one_picture(truck):
    clip = render_photo_clip(truck)
    assert clip.video.shape == (9, 3, 64, 64) and clip.poses.shape == (9, 4, 4)
    depths = set(torch.round(clip.depth.unique() * 10).div(10).tolist())
    assert {2.0, 3.5, 6.0} <= depths, depths  # every layer is visible in some pixel
    static = render_photo_clip(replace(truck, kind="static")).video
    assert torch.equal(static[0], static[-1]) and torch.allclose(static[0], clip.video[0], atol=1e-6)


@pytest.mark.parametrize("kind", [k for k in CLIP_KINDS if k not in ("consistent", "static")])
def test_every_inconsistency_leaves_frame_zero_alone_and_breaks_the_rest(truck, kind):
    clean = render_photo_clip(truck).video
    broken = render_photo_clip(replace(truck, kind=kind)).video
    assert torch.allclose(broken[0], clean[0], atol=1e-5)
    assert (broken[-1] - clean[-1]).abs().mean() > 0.01


def test_a_zoom_changes_the_focal_length_not_the_pose():
    clip = render_photo_clip(PhotoClipSpec(("chelsea", "coins", "moon"), "Camera zooms in.", num_frames=5))
    assert torch.equal(clip.poses, torch.eye(4).expand(5, 4, 4))
    focal = clip.intrinsics[:, 0, 0]
    assert torch.all(focal[1:] > focal[:-1]) and focal[-1] / focal[0] == pytest.approx(photos.PHOTO_MOTION.zoom)


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, float(torch.dot(a, b) / (a.norm() * b.norm()))))))


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_the_geometry_core_recovers_every_rendered_camera_motion():
    """A check of the renderer: on the consistent clip of every verb, the two-view geometry of the pair spanning the
    whole clip gives back the rendered camera: the relative pose from the essential matrix where the camera
    travels, the homography ``K_j R K_i^-1`` where it only turns or zooms."""
    specs = photo_clip_specs("tune")
    clips = [render_photo_clip(s) for s in specs]
    analysis = analyse(torch.stack([c.video for c in clips]), GeometrySettings(gaps=(1.0,), max_pairs=1))
    for k, (spec, clip) in enumerate(zip(specs, clips, strict=True)):
        assert bool(analysis.geometry.valid[k]), spec.camera
        points_i, points_j = analysis.matches.of_pair(k)
        rotation, translation = relative_motion(
            clip.poses.double(), torch.tensor([0]), torch.tensor([-1 % len(clip.poses)])
        )
        intrinsics = clip.intrinsics.double()
        if translation.norm() > 1e-6:  # the camera travels: the essential matrix's pose
            estimated_r, estimated_t = relative_pose(
                analysis.geometry.fundamental[k].double(), intrinsics[0], points_i.double(), points_j.double()
            )
            assert rotation_angle_deg(estimated_r @ rotation[0].T) < 1.5, spec.camera
            assert _angle_deg(estimated_t, translation[0]) < 15, spec.camera
        else:  # it only turns or zooms: one homography maps frame 0 onto the last
            truth = intrinsics[-1] @ rotation[0] @ torch.linalg.inv(intrinsics[0])
            mapped = torch.cat([points_i.double(), torch.ones(len(points_i), 1, dtype=torch.float64)], 1) @ truth.T
            error = (mapped[:, :2] / mapped[:, 2:] - points_j.double()).norm(dim=1)
            assert error.median() < 0.5, spec.camera
