"""The paired statistic behind every "trained vs base" figure."""

import math

import pytest
import torch

from world_r1.metrics import paired_difference


def test_paired_difference_uses_the_spread_of_the_differences_not_of_the_values():
    base = torch.tensor([0.1, 0.5, 0.9, 0.3])  # seeds differ a lot
    trained = base + torch.tensor([0.11, 0.09, 0.10, 0.10])  # the model gains about the same on each
    stats = paired_difference(base, trained)
    assert stats["diff"] == pytest.approx(0.1) and stats["n"] == 4
    assert stats["se"] == pytest.approx(float(torch.tensor([0.11, 0.09, 0.10, 0.10]).double().std()) / 2, rel=1e-4)
    assert stats["z"] > 10  # an unpaired test would see nothing through the seed spread


def test_paired_difference_skips_pairs_not_measured_on_either_side():
    base = torch.tensor([1.0, math.nan, 2.0, 4.0])
    trained = torch.tensor([2.0, 5.0, math.nan, 6.0])
    stats = paired_difference(base, trained)
    assert stats["n"] == 2 and stats["base"] == 2.5 and stats["trained"] == 4.0 and stats["diff"] == 1.5
    assert math.isnan(paired_difference(torch.tensor([math.nan]), torch.tensor([1.0]))["z"])
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(torch.zeros(2), torch.zeros(3))


def test_paired_difference_without_spread_is_zero_or_infinite():
    zeros = torch.zeros(6)
    assert paired_difference(zeros, zeros)["z"] == 0.0  # nothing changed: no difference, not "unmeasured"
    assert paired_difference(zeros, zeros + 1)["z"] == math.inf
    assert paired_difference(zeros, zeros - 1)["z"] == -math.inf
    assert math.isnan(paired_difference(zeros[:1], zeros[:1])["z"])  # one pair: no standard error at all
