"""The per-step diagnostics on hand-made numbers: the all-equal share and spread of groups, the noise-level buckets,
and the gradient norm split by bucket."""

import math

import pytest
import torch

from world_r1.grpo.diagnostics import GradientByTimestep, TimestepProbe, group_reward_stats, sigma_bucket


def test_group_reward_stats_counts_the_groups_without_signal():
    rewards = torch.tensor([0.5, 0.5, 0.5, 1.0, 3.0, 2.0, 2.0, float("nan")])
    group_ids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    stats = group_reward_stats(rewards, group_ids)
    # group 0 all equal; group 1 spans 2 (std 1); group 2 is equal on its finite rewards
    assert stats["all_equal_groups"] == pytest.approx(2 / 3)
    assert stats["group_spread"] == pytest.approx(1 / 3)
    assert stats["group_range"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"both be \(N,\)"):
        group_reward_stats(rewards, group_ids[:3])


def test_sigma_buckets_are_named_by_their_lower_timestep():
    assert [sigma_bucket(s) for s in (0.0, 0.19, 0.2, 0.55, 0.99, 1.0)] == [
        "t000",
        "t000",
        "t200",
        "t400",
        "t800",
        "t800",
    ]
    assert sigma_bucket(0.95, buckets=10) == "t900"


def test_gradient_norms_by_bucket_on_hand_made_gradients():
    """Loss ``c . w`` has gradient ``c``: each bucket's norm is that of the sum of its blocks' c, a bucket met in two
    blocks adds them in quadrature, and a backward after the gradients were cleared starts a new block."""
    w = torch.zeros(2, requires_grad=True)
    tracker = GradientByTimestep([w])

    def backward(loss):
        loss.backward()

    tracker.backward(torch.dot(torch.tensor([3.0, 0.0]), w), "t800", backward)
    tracker.backward(torch.dot(torch.tensor([0.0, 4.0]), w), "t800", backward)  # one block: |(3, 4)| = 5
    tracker.backward(torch.dot(torch.tensor([1.0, 0.0]), w), "t200", backward)
    tracker.backward(torch.dot(torch.tensor([0.0, 2.0]), w), "t800", backward)  # a second t800 block: |(0, 2)|
    assert torch.equal(w.grad, torch.tensor([4.0, 6.0]))  # the accumulated gradient is untouched
    w.grad = None  # an optimizer step
    tracker.backward(torch.dot(torch.tensor([0.0, 7.0]), w), "t200", backward)
    norms = tracker.norms()
    assert norms["t800"] == pytest.approx(math.sqrt(25 + 4))
    assert norms["t200"] == pytest.approx(math.sqrt(1 + 49))
    assert list(norms) == ["t200", "t800"]


def test_timestep_probe_reads_only_forwards_with_gradient():
    class Model(torch.nn.Module):
        def forward(self, hidden_states, timestep):
            return hidden_states

    model = Model()
    probe = TimestepProbe([model])
    model(hidden_states=torch.zeros(1), timestep=torch.tensor([700.0, 700.0]))
    with torch.no_grad():  # a reference or old-policy forward
        model(hidden_states=torch.zeros(1), timestep=torch.tensor([100.0]))
    assert probe.sigma == pytest.approx(0.7)
    probe.close()
    model(hidden_states=torch.zeros(1), timestep=torch.tensor([300.0]))
    assert probe.sigma == pytest.approx(0.7)
