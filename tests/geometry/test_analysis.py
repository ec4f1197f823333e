"""The geometry core's one entry point: settings checked once, frame pairs relative to the clip, a plain function of
its input (no cache to go stale)."""

import pytest
import torch

from world_r1.geometry import (
    GeometrySettings,
    analyse,
    anchor_pairs,
    frame_pairs,
    gap_frames,
    grayscale_resized,
    resized,
)
from world_r1.synthetic import rigid_video


def test_frame_pairs_are_fractions_of_the_clip():
    assert gap_frames(9, 0.5) == 4 and gap_frames(81, 0.5) == 40 and gap_frames(3, 0.1) == 1
    assert frame_pairs(9, (0.5, 1.0), 2).tolist() == [[0, 4], [0, 8], [4, 8]]
    assert frame_pairs(81, (0.5,), 2).tolist() == [[0, 40], [40, 80]]  # one setting, any length
    assert frame_pairs(16, (0.25,), 4).tolist() == [[0, 4], [4, 8], [7, 11], [11, 15]]
    assert frame_pairs(1).shape == (0, 2)
    assert len(frame_pairs(81, (0.05, 0.2), 4)) == 8


@pytest.mark.parametrize(
    "bad", [{"gaps": (4,)}, {"gaps": (0.0,)}, {"gaps": ()}, {"max_pairs": 0}, {"ratio": 1.5}, {"ransac_px": 0}]
)
def test_settings_name_the_problem(bad):
    with pytest.raises(ValueError, match="geometry"):
        GeometrySettings(**bad)


def test_analysis_is_a_function_of_its_input():
    videos = rigid_video(9, 64, 64, seed=0).video[None]
    settings = GeometrySettings(gaps=(0.5,), max_pairs=1)
    first, again = analyse(videos, settings), analyse(videos, settings)
    assert torch.equal(first.geometry.inlier_ratio, again.geometry.inlier_ratio) and first.settings is settings
    assert first.num_videos == 1 and first.geometry.valid.all()
    videos.zero_()  # a changed tensor is analysed as it is now, never served an earlier result
    assert analyse(videos, settings).geometry.num_matches[0] == 0 < first.geometry.num_matches[0]
    with torch.inference_mode():  # Lightning's validation and test loops
        assert analyse(rigid_video(9, 64, 64, seed=0).video[None], settings).geometry.valid.all()


def test_one_frame_videos_have_no_pairs():
    analysis = analyse(torch.rand(2, 1, 3, 32, 32))
    assert analysis.pairs.shape == (0, 2) and analysis.geometry.valid.numel() == 0


def test_anchor_pairs_join_frame_0_to_frames_spread_to_the_end():
    assert anchor_pairs(17, 4).tolist() == [[0, 4], [0, 8], [0, 12], [0, 16]]
    assert anchor_pairs(3, 8).tolist() == [[0, 1], [0, 2]]  # no more anchors than frames
    assert anchor_pairs(1, 8).shape == (0, 2) and anchor_pairs(17, 0).shape == (0, 2)


def test_anchored_pairs_are_a_separate_analysis_from_the_same_features():
    videos = torch.stack([rigid_video(9, 64, 64, seed=s).video for s in range(2)])
    plain = analyse(videos, GeometrySettings(gaps=(0.5,), max_pairs=2))
    both = analyse(videos, GeometrySettings(gaps=(0.5,), max_pairs=2, anchors=4))
    assert plain.anchored is None
    assert torch.equal(both.pairs, plain.pairs)  # the other terms' pairs are untouched
    assert torch.equal(both.geometry.inlier_ratio, plain.geometry.inlier_ratio)
    assert both.anchored.pairs.tolist() == [[0, 2], [0, 4], [0, 6], [0, 8]]
    assert both.anchored.num_videos == 2 and both.anchored.size == both.size
    with pytest.raises(ValueError, match="anchors"):
        GeometrySettings(anchors=-1)


def test_upscale_analyses_small_frames_at_max_side_in_the_inputs_pixels():
    videos = rigid_video(9, 96, 96, seed=0).video[None]
    plain = analyse(videos, GeometrySettings(gaps=(0.5,), max_pairs=1, max_side=192))
    enlarged = analyse(videos, GeometrySettings(gaps=(0.5,), max_pairs=1, max_side=192, upscale=True))
    assert plain.size == (96, 96) and plain.scale == 1.0
    assert enlarged.size == (192, 192) and enlarged.scale == 0.5  # analysis pixels -> input pixels
    assert enlarged.geometry.valid.all() and enlarged.geometry.inlier_ratio[0] > 0.8
    # the same camera motion, measured in analysis pixels: twice the displacement at twice the size
    ratio = enlarged.geometry.parallax_px / plain.geometry.parallax_px
    torch.testing.assert_close(ratio, torch.tensor([2.0]), atol=0.15, rtol=0)


def test_resized_averages_to_shrink_and_interpolates_to_enlarge():
    frames = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert resized(frames, (4, 4)) is frames
    torch.testing.assert_close(resized(frames, (2, 2))[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    enlarged = resized(frames, (8, 8))
    assert enlarged.shape == (1, 1, 8, 8) and len(enlarged.unique()) > 16  # bilinear, not repeated pixels
    gray, scale = grayscale_resized(torch.rand(2, 3, 48, 64), 128, upscale=True)
    assert gray.shape == (2, 1, 96, 128) and scale == 0.5
    assert grayscale_resized(torch.rand(2, 3, 48, 64), 128)[0].shape == (2, 1, 48, 64)
