"""The shared analysis cache: one analysis per unmodified tensor and settings, never a stale one."""

import torch

from world_r1.geometry import GeometrySettings, clear_shared_analysis, frame_pairs, shared_analysis
from world_r1.synthetic import rigid_video


def test_cache_hits_only_the_same_unmodified_tensor_with_equal_settings():
    clear_shared_analysis()
    videos = rigid_video(5, 64, 64, seed=0).video[None]
    settings = GeometrySettings(gaps=(4,), max_pairs=1)
    first = shared_analysis(videos, settings)
    assert shared_analysis(videos, GeometrySettings(gaps=[4], max_pairs=1)) is first  # equal settings, any sequence
    assert shared_analysis(videos.clone(), settings) is not first  # equal values, another tensor
    assert shared_analysis(videos, GeometrySettings(gaps=(4,), max_pairs=1, num_features=128)) is not first
    assert shared_analysis(videos, settings, cache=False) is not first
    videos.zero_()  # modified in place: recomputed
    again = shared_analysis(videos, settings)
    assert again is not first and again.geometry.num_matches[0] == 0 < first.geometry.num_matches[0]
    clear_shared_analysis()
    assert shared_analysis(videos, settings) is not again


def test_frame_pairs():
    assert frame_pairs(16, (4,), 4).tolist() == [[0, 4], [4, 8], [7, 11], [11, 15]]
    assert frame_pairs(3, (4,), 4).tolist() == [[0, 2]]  # the gap shrinks to fit
    assert frame_pairs(1).shape == (0, 2)
    assert len(frame_pairs(81, (4, 16), 4)) == 8


def test_inference_mode_tensors_are_cached_by_content():
    clear_shared_analysis()
    settings = GeometrySettings(gaps=(4,), max_pairs=1)
    with torch.inference_mode():
        videos = rigid_video(5, 64, 64, seed=0).video[None]
        first = shared_analysis(videos, settings)
        assert shared_analysis(videos, settings) is first
        videos.zero_()
        assert shared_analysis(videos, settings).geometry.num_matches[0] == 0 < first.geometry.num_matches[0]
