"""WeightedReward: weights, phase overrides, timings, faults that never reach the training loop, YAML configuration,
and one feature analysis shared by the geometric terms."""

from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser

import world_r1.rewards.base as base_module
from world_r1.geometry.depth import TriangulatedDepth
from world_r1.rewards import (
    BrightnessReward,
    ColorReward,
    DepthConsistencyReward,
    QualityReward,
    Reward,
    WeightedReward,
)
from world_r1.synthetic import rigid_video


class _Raises(Reward):
    def forward(self, videos, prompts):
        raise RuntimeError("boom")


class _NaNFirst(Reward):
    def forward(self, videos, prompts):
        score = videos.mean(dim=(1, 2, 3, 4))
        score[0] = float("nan")
        return {"score": score}


class _Counting(Reward):
    calls = 0

    def forward(self, videos, prompts):
        _Counting.calls += 1
        return {"score": torch.ones(videos.shape[0])}


VIDEOS = torch.rand(3, 5, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_weighted_total_and_terms():
    reward = WeightedReward({"bright": BrightnessReward(), "red": ColorReward()}, {"bright": 2.0, "red": 0.5})
    out = reward(VIDEOS, ["a"] * 3)
    torch.testing.assert_close(out["total"], 2.0 * out["bright"] + 0.5 * out["red"])
    assert "bright/brightness" in out and "red/red" in out
    assert set(reward.last_timings) == {"bright", "red"}


def test_phase_weights_evaluate_only_active_terms():
    _Counting.calls = 0
    reward = WeightedReward({"count": _Counting(), "bright": BrightnessReward()})
    out = reward(VIDEOS, ["a"] * 3, weights={"bright": 1.0})
    assert _Counting.calls == 0 and "count" not in out
    torch.testing.assert_close(out["total"], out["bright"])


def test_a_raising_term_scores_worst_and_is_counted():
    out = WeightedReward({"bad": _Raises(), "bright": BrightnessReward()})(VIDEOS, ["a"] * 3)
    assert torch.equal(out["bad"], torch.zeros(3)) and torch.equal(out["bad/degenerate"], torch.ones(3))
    torch.testing.assert_close(out["total"], out["bright"])


def test_nonfinite_scores_become_worst():
    out = WeightedReward({"nan": _NaNFirst()})(VIDEOS, ["a"] * 3)
    assert torch.isfinite(out["total"]).all() and out["nan"][0] == 0
    assert out["nan/degenerate"].tolist() == [1.0, 0.0, 0.0]


def test_bad_configuration():
    with pytest.raises(ValueError, match="unknown reward terms"):
        WeightedReward({"bright": BrightnessReward()}, {"brigth": 1.0})
    with pytest.raises(ValueError, match="unknown reward terms"):
        WeightedReward({"bright": BrightnessReward()})(VIDEOS, ["a"] * 3, weights={"quality": 1.0})
    with pytest.raises(ValueError, match=r"\(B, F, 3, H, W\)"):
        WeightedReward({"bright": BrightnessReward()})(torch.rand(3, 8, 8), ["a"])


REWARD_YAML = """
reward:
  geometry:
    gaps: [0.5]
  terms:
    epipolar:
      class_path: world_r1.rewards.EpipolarReward
    depth:
      class_path: world_r1.rewards.DepthConsistencyReward
      init_args:
        depth:
          class_path: world_r1.geometry.depth.TriangulatedDepth
          init_args:
            stride: 4
        fov_deg: 60.0
    motion:
      class_path: world_r1.rewards.MotionReward
    quality:
      class_path: world_r1.rewards.QualityReward
      init_args:
        model: {clip}
        num_frames: 2
  weights:
    epipolar: 0.5
    depth: 0.5
    motion: 0.2
    quality: 0.0
"""


def parse_reward(text: str) -> WeightedReward:
    parser = ArgumentParser()
    parser.add_argument("--reward", type=WeightedReward)
    return parser.instantiate_classes(parser.parse_string(text)).reward


def test_yaml_configures_terms_and_weights_through_jsonargparse(tiny_clip, monkeypatch):
    reward = parse_reward(REWARD_YAML.format(clip=tiny_clip))
    assert isinstance(reward.terms["depth"], DepthConsistencyReward)
    assert isinstance(reward.terms["depth"].depth, TriangulatedDepth) and reward.terms["depth"].depth.stride == 4
    assert isinstance(reward.terms["quality"], QualityReward)
    assert reward.weights == {"epipolar": 0.5, "depth": 0.5, "motion": 0.2, "quality": 0.0}
    assert reward.geometry.gaps == (0.5,)

    calls = []
    analyse = base_module.analyse
    monkeypatch.setattr(base_module, "analyse", lambda *a, **k: calls.append(a[1]) or analyse(*a, **k))
    videos = rigid_video(9, 96, 96, seed=0).video[None]
    out = reward(videos, ["a room"])
    assert calls == [reward.geometry]  # three geometric terms, one feature analysis, with the reward's settings
    assert {"epipolar", "depth", "motion", "depth/psnr", "depth/ssim", "epipolar/inlier_ratio"} <= set(out)
    assert "quality" not in out and set(reward.last_timings) == {"epipolar", "depth", "motion"}
    torch.testing.assert_close(out["total"], 0.5 * out["epipolar"] + 0.5 * out["depth"] + 0.2 * out["motion"])
    quality_only = reward(videos, ["a room"], weights={"quality": 1.0})
    assert set(reward.last_timings) == {"quality"} and torch.equal(quality_only["total"], quality_only["quality"])


def test_the_tiny_config_reward_block_instantiates():
    block = yaml.safe_load((Path(__file__).parents[2] / "configs" / "tiny.yaml").read_text())["model"]["reward"]
    reward = parse_reward(yaml.safe_dump({"reward": block}))
    assert set(reward.terms) == set(block["terms"]) and reward.weights.keys() == block["terms"].keys()
