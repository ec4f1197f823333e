"""WeightedReward: weights, phase overrides, timings, and faults that never reach the training loop."""

import pytest
import torch

from world_r1.rewards import BrightnessReward, ColorReward, Reward, WeightedReward


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
