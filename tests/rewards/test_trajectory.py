"""Trajectory alignment on rendered scenes with a known camera path: the intended trajectory scores high, a
mismatched one low; static prompts reward a still camera; degenerate input is finite and worst-case."""

import math

import pytest
import torch

from world_r1.camera import CameraParseError, camera_trajectory, parse_camera
from world_r1.rewards import WeightedReward
from world_r1.rewards.trajectory import TrajectoryReward
from world_r1.synthetic import render

SIZE, FRAMES = 128, 9
MOTIONS = ["pan left", "pan right", "push in", "pull back", "truck right", "tilt up", "fixed"]


@pytest.fixture(scope="module")
def reward() -> TrajectoryReward:
    return TrajectoryReward(gaps=(4,), max_pairs=2, max_side=SIZE)


@pytest.fixture(scope="module")
def videos() -> torch.Tensor:
    """(7, F, 3, H, W): the scene rendered along each of MOTIONS (a different texture seed for each)."""
    rendered = [
        render(camera_trajectory(parse_camera(m), FRAMES), SIZE, SIZE, seed=k).video for k, m in enumerate(MOTIONS)
    ]
    return torch.stack(rendered)


def scores(reward, videos, motion: str) -> dict[str, float]:
    out = reward(videos, [f"Camera {motion}. A quiet street." for _ in MOTIONS])
    assert all(torch.isfinite(v).all() for v in out.values())
    return {m: float(s) for m, s in zip(MOTIONS, out["score"], strict=True)}


@pytest.mark.parametrize(
    ("intended", "opposite"), [("pan left", "pan right"), ("push in", "pull back"), ("tilt up", "fixed")]
)
def test_the_intended_trajectory_beats_every_other(reward, videos, intended, opposite):
    score = scores(reward, videos, intended)
    assert score[intended] > 0.8, score
    assert score[opposite] < 0.2, score
    others = [s for m, s in score.items() if m != intended]
    assert max(others) < score[intended] - 0.3, score


def test_reversed_motions_score_low_in_both_directions(reward, videos):
    for intended, video in [("pan right", "pan left"), ("pull back", "push in"), ("truck right", "pull back")]:
        score = scores(reward, videos, intended)
        assert score[video] < 0.2 < 0.8 < score[intended], (intended, score)


def test_raw_terms_measure_the_angle_errors(reward, videos):
    out = reward(videos, ["Camera pan left."] * len(MOTIONS))
    # 30 degrees over 8 frame intervals: 15 degrees intended per pair of frames 4 apart; the opposite pan is 30 off
    assert float(out["rotation_error_deg"][0]) < 1.0
    assert float(out["rotation_error_deg"][1]) == pytest.approx(30.0, abs=2.0)
    push = reward(videos, ["Camera push in."] * len(MOTIONS))
    assert float(push["translation_error_deg"][2]) < 10.0 < 170.0 < float(push["translation_error_deg"][3])
    assert not push["degenerate"].any() and not push["static_expected"].any()


def test_static_prompts_reward_a_still_camera(reward, videos):
    for prompt in ["Camera fixed. A room.", "A room with a piano."]:  # no camera sentence: a still camera expected
        out = reward(videos, [prompt] * len(MOTIONS))
        score = dict(zip(MOTIONS, out["score"].tolist(), strict=True))
        assert score["fixed"] > 0.95 and max(v for m, v in score.items() if m != "fixed") < 0.1, score
        assert torch.equal(out["static_expected"], torch.ones(len(MOTIONS)))


def test_explicit_cameras_override_the_prompt(reward, videos):
    cameras = ["pan left", None] + [None] * (len(MOTIONS) - 2)
    out = reward(videos, ["Camera pan right."] * len(MOTIONS), cameras=cameras)
    assert float(out["score"][0]) > 0.8 and float(out["score"][1]) > 0.8
    with pytest.raises(CameraParseError):
        reward(videos[:1], ["A room."], cameras=["spin wildly"])


def test_degenerate_videos_score_worst_and_never_raise(reward, videos):
    black = torch.zeros(FRAMES, 3, SIZE, SIZE)
    noise = torch.rand(FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    batch = torch.stack([black, black + 0.5, noise])
    for prompt in ["Camera pan left.", "Camera fixed."]:
        out = reward(batch, [prompt] * 3)
        assert all(torch.isfinite(v).all() for v in out.values())
        assert torch.equal(out["score"], torch.zeros(3)) and torch.equal(out["degenerate"], torch.ones(3))
    one_frame = reward(videos[:2, :1], ["Camera pan left.", "Camera fixed."])
    assert torch.equal(one_frame["score"], torch.zeros(2)) and torch.equal(one_frame["degenerate"], torch.ones(2))


def test_composes_with_other_terms(reward, videos):
    total = WeightedReward({"trajectory": reward}, {"trajectory": 2.0})(videos, ["Camera pan left."] * len(MOTIONS))
    assert set(total) >= {"total", "trajectory", "trajectory/rotation_error_deg", "trajectory/degenerate"}
    assert math.isclose(float(total["total"][0]), 2 * float(total["trajectory"][0]), rel_tol=1e-6)
    assert float(total["trajectory"][0]) > 0.8 > 0.2 > float(total["trajectory"][1])


def test_scores_inference_mode_tensors(reward, videos):
    """Lightning's validate/test loops run under ``torch.inference_mode``."""
    with torch.inference_mode():
        out = reward(videos[:1].clone(), ["Camera pan left."])
    assert float(out["score"][0]) > 0.8
