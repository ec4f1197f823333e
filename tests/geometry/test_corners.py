"""The corner detector: sub-pixel keypoints in the frame's own pixels, descriptors that match across the small changes
of scale of video pairs, and the same verdicts on rigid and morphing scenes as SIFT."""

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import textured_frame
from world_r1.geometry import CornerDetector, GeometrySettings, analyse, match_pairs
from world_r1.geometry.corners import box_sum
from world_r1.synthetic import rigid_video
from world_r1.synthetic.scenes import morph


def _warped(frame: torch.Tensor, zoom: float, shift: tuple[float, float]) -> torch.Tensor:
    """``frame`` magnified by ``zoom`` about its centre and moved by ``shift`` (x, y) pixels, bilinearly: a point at
    ``p`` moves to ``c + zoom * (p - c) + shift``."""
    size = frame.shape[-1]
    centre = (size - 1) / 2
    pixels = torch.arange(size).float()
    y, x = torch.meshgrid(pixels, pixels, indexing="ij")
    source_x = (x - shift[0] - centre) / zoom + centre
    source_y = (y - shift[1] - centre) / zoom + centre
    grid = torch.stack([(source_x + 0.5) / size, (source_y + 0.5) / size], -1)[None] * 2 - 1
    return F.grid_sample(frame, grid, mode="bilinear", align_corners=False)


def _errors(frame: torch.Tensor, moved: torch.Tensor, where) -> torch.Tensor:
    """Distances of the matches of ``moved`` to where the motion puts their points of ``frame``."""
    matches = match_pairs(CornerDetector(256)(torch.cat([frame, moved])), torch.tensor([0]), torch.tensor([1]))
    return (matches.points2 - where(matches.points1)).norm(dim=1)


def test_keypoints_are_sub_pixel_in_the_frames_pixels():
    frame = textured_frame()
    shift = torch.tensor([2.5, 1.5])  # half a pixel off the grid both ways
    errors = _errors(frame, _warped(frame, 1.0, (2.5, 1.5)), lambda p: p + shift)
    assert len(errors) >= 60
    # keypoints on the pixel grid would be 0.71 px off (half a pixel in x and y); refined, most are far closer
    assert errors.median() < 0.25 and (errors < 1.0).float().mean() > 0.9


@pytest.mark.parametrize("zoom", [0.75, 1.15, 1.35])
def test_descriptors_match_across_the_scale_changes_of_video_pairs(zoom):
    frame = textured_frame()
    centre = (frame.shape[-1] - 1) / 2
    errors = _errors(frame, _warped(frame, zoom, (0.0, 0.0)), lambda p: centre + zoom * (p - centre))
    assert len(errors) >= 40 and (errors < 1.0).float().mean() > 0.8


def test_descriptors_are_upright():
    frame = textured_frame()
    size = frame.shape[-1]
    turned = torch.rot90(frame, 1, dims=(2, 3))  # a roll of the camera: (x, y) -> (y, size - 1 - x)
    errors = _errors(frame, turned, lambda p: torch.stack([p[:, 1], size - 1 - p[:, 0]], 1))
    assert (errors < 1.0).float().mean() < 0.2


def test_flat_and_tiny_frames_give_no_keypoints_and_no_error():
    noise = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))  # not the global RNG: order-free
    features = CornerDetector(64)(torch.cat([torch.full((1, 1, 48, 48), 0.5), noise]))
    assert features.keypoints.shape == (2, 64, 2) and features.descriptors.shape == (2, 64, 128)
    assert not features.mask[0].any() and features.mask[1].sum() > 10  # noise frames give 17-27 corners (30 seeds)
    assert torch.isfinite(features.descriptors).all()
    tiny = CornerDetector(64)(torch.rand(3, 1, 8, 8))
    assert tiny.mask.shape == (3, 64)


def test_box_sum_is_a_window_sum():
    images = torch.rand(2, 3, 20, 17)
    assert torch.allclose(box_sum(images, 4), F.avg_pool2d(images, 4, 1) * 16, atol=1e-5)


def test_corners_see_a_rigid_scene_as_rigid_and_a_morphing_one_as_not():
    clips = [rigid_video(9, 128, 128, seed=s).video for s in range(2)]
    videos = torch.stack(clips + [morph(clip, 6.0, seed=s) for s, clip in enumerate(clips)])
    settings = GeometrySettings(gaps=(0.5,), max_pairs=2, detector="corners")
    geometry = analyse(videos, settings).geometry
    rigid, morphing = geometry.inlier_ratio.reshape(4, -1).mean(1).split(2)
    # SIFT on the same videos: rigid 0.99, and 0.34 above the morphing ones
    assert geometry.valid.all() and rigid.min() > 0.9 and rigid.min() > morphing.max() + 0.25


@pytest.mark.parametrize("bad", [{"num_features": 0}, {"cell": 0}, {"suppression": 4}, {"blur_sigma": -1.0}])
def test_bad_detector_settings_name_the_problem(bad):
    with pytest.raises(ValueError, match="CornerDetector"):
        CornerDetector(**bad)


def test_an_unknown_detector_names_the_choices():
    with pytest.raises(ValueError, match=r"geometry.detector must be one of \['sift', 'corners'\], got 'orb'"):
        GeometrySettings(detector="orb")
