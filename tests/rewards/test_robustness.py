"""Every reward term on inputs it cannot judge: black, constant and noise frames, 1- and 2-frame videos, too few
matches, RANSAC failure. Always a finite worst-case score and a degenerate flag, never NaN (raw values included:
none may read as perfect), never an exception."""

import pytest
import torch
from kornia.geometry.ransac import RANSAC

from world_r1.geometry import GeometrySettings, analyse
from world_r1.geometry.depth_model import ModelDepth
from world_r1.rewards import DepthConsistencyReward, EpipolarReward, MotionReward, QualityReward
from world_r1.synthetic import rigid_video

SIZE, FRAMES = 96, 9
GEOMETRIC = ["epipolar", "depth", "depth_model", "motion"]


@pytest.fixture(scope="module")
def rewards(tiny_depth_anything, tiny_clip):
    return {
        "epipolar": EpipolarReward(),
        "depth": DepthConsistencyReward(),
        "depth_model": DepthConsistencyReward(depth=ModelDepth(tiny_depth_anything, input_size=56)),
        "motion": MotionReward(),
        "quality": QualityReward(tiny_clip, num_frames=2),
    }


VIDEOS = {
    "black": torch.zeros(FRAMES, 3, SIZE, SIZE),
    "constant": torch.full((FRAMES, 3, SIZE, SIZE), 0.5),
    "noise": torch.rand(FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)),
    "one-frame": torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)),
    "two-frames": torch.zeros(2, 3, SIZE, SIZE),
}


def check_finite(out: dict[str, torch.Tensor], batch: int) -> None:
    """Scores, flags and raw measurements are all finite, and scores lie in [0, 1]."""
    assert "score" in out and "degenerate" in out
    for name, value in out.items():
        assert value.shape == (batch,) and torch.isfinite(value).all(), name
    assert ((out["score"] >= 0) & (out["score"] <= 1)).all()


@pytest.mark.parametrize("name", [*GEOMETRIC, "quality"])
@pytest.mark.parametrize("kind", list(VIDEOS))
def test_degenerate_videos(rewards, name, kind):
    video = VIDEOS[kind]
    out = rewards[name](torch.stack([video, video]), ["a red car", ""])
    check_finite(out, 2)
    if name == "quality":
        return  # CLIP judges any frame; only finiteness is asked of it
    assert (out["score"] <= 0.2).all(), out["score"]
    if kind != "noise":  # no texture or no pair: nothing to judge
        assert (out["score"] == 0).all() and (out["degenerate"] == 1).all()
        if name == "epipolar":  # no pair was measured: the worst error, never a perfect-looking 0
            assert (out["sampson_px"] == rewards[name].max_error_px).all()


@pytest.mark.parametrize("name", ["epipolar", "depth"])
def test_too_few_matches_is_degenerate(name):
    video = rigid_video(FRAMES, SIZE, SIZE, seed=0).video[None]
    reward = EpipolarReward() if name == "epipolar" else DepthConsistencyReward()
    out = reward(video, [""], analysis=analyse(video, GeometrySettings(min_matches=10_000)))
    check_finite(out, 1)
    assert out["score"][0] == 0 and out["degenerate"][0] == 1


@pytest.mark.parametrize("name", GEOMETRIC)
def test_ransac_failure_is_degenerate(rewards, name, monkeypatch):
    def fail(self, *args, **kwargs):
        raise RuntimeError("RANSAC found no model")

    monkeypatch.setattr(RANSAC, "forward", fail)
    out = rewards[name](rigid_video(FRAMES, SIZE, SIZE, seed=0).video[None], [""])
    check_finite(out, 1)
    if name != "motion":  # motion needs matches, not a model
        assert out["score"][0] == 0 and out["degenerate"][0] == 1


def test_depth_source_failure_leaves_the_homography(monkeypatch):
    """A depth source that cannot fit its anchors costs the depth re-rendering, not the run: the pairs keep their
    homography's explanation (finite, and no depth agreement claimed)."""
    reward = DepthConsistencyReward()

    def fail(*args, **kwargs):
        raise ValueError("need at least 8 depth anchors per frame")

    monkeypatch.setattr(reward.depth, "forward", fail)
    out = reward(rigid_video(FRAMES, SIZE, SIZE, seed=0).video[None], [""])
    check_finite(out, 1)
    assert out["depth_agreement"][0] == 0 and out["explained"][0] == out["homography"][0]


def test_inference_mode_videos_are_scored():
    """Lightning's validation and test loops decode under ``torch.inference_mode`` (tensors with no version)."""
    with torch.inference_mode():
        videos = rigid_video(FRAMES, SIZE, SIZE, seed=0).video[None]
        for reward in (EpipolarReward(), DepthConsistencyReward(), MotionReward()):
            out = reward(videos, [""])
            check_finite(out, 1)
            assert out["degenerate"][0] == 0 and out["score"][0] > 0.5, (type(reward).__name__, out)
