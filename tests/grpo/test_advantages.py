"""Group advantages: normalised within each prompt's group, robust to NaN, identical across process splits."""

import pytest
import torch

from world_r1.grpo import gather_group_rewards, group_advantages
from world_r1.grpo.advantages import covariate_part


def test_zero_mean_unit_std_per_group():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 10.5, 9.0, 12.0])
    groups = torch.tensor([0, 0, 0, 0, 7, 7, 7, 7])
    adv = group_advantages(rewards, groups, eps=0.0).values
    for g in (0, 7):
        a = adv[groups == g]
        assert abs(float(a.mean())) < 1e-6
        assert abs(float(a.std(unbiased=False)) - 1) < 1e-5


def test_hand_computed_values_and_clip():
    rewards = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # one success among ten
    adv = group_advantages(rewards, torch.zeros(10, dtype=torch.long), clip=2.0, eps=0.0).values
    std = 0.3  # population std of nine zeros and a one
    assert adv[1] == pytest.approx(2.0)  # (1 - 0.1) / 0.3 = 3, clipped to 2
    assert adv[0] == pytest.approx(-0.1 / std)


def test_group_std_is_the_mean_spread_within_groups_in_both_modes():
    rewards = torch.tensor([0.0, 1.0, 5.0, 5.0, 2.0, 4.0])  # population stds 0.5, 0 and 1
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    for mode in ("group", "global"):
        assert group_advantages(rewards, groups, std_mode=mode).group_std == pytest.approx(0.5)
    assert gather_group_rewards(rewards, groups, lambda t: torch.stack([t, t])).group_std == pytest.approx(0.5)


def test_identical_rewards_give_zero():
    assert torch.equal(group_advantages(torch.full((4,), 0.7), torch.zeros(4, dtype=torch.long)).values, torch.zeros(4))


def test_nonfinite_rewards_are_counted_and_scored_worst():
    rewards = torch.tensor([1.0, float("nan"), 3.0, float("inf"), 5.0, 6.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    result = group_advantages(rewards, groups)
    assert result.num_nonfinite == 2 and torch.isfinite(result.values).all()
    assert result.values[1] == result.values[0] == result.values[:3].min()
    assert result.values[3] == result.values[4] == result.values[3:].min()


def test_global_std_mode():
    rewards = torch.tensor([1.0, 3.0, 10.0, 20.0])
    groups = torch.tensor([0, 0, 1, 1])
    adv = group_advantages(rewards, groups, std_mode="global", eps=0.0).values
    std = rewards.std(unbiased=False)
    torch.testing.assert_close(adv, torch.tensor([-1.0, 1.0, -5.0, 5.0]) / std)


def test_split_across_processes_equals_one_process():
    """A group spread over two ranks gets the same advantages as when all its samples sit on one process."""
    rewards = torch.tensor([0.1, 0.9, 0.4, 0.2, 0.8, 0.3, 0.6, 0.5])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0])  # both groups straddle the two halves
    single = group_advantages(rewards, groups).values
    world = {0: (rewards[:4], groups[:4]), 1: (rewards[4:], groups[4:])}

    def fake_all_gather(tensor):
        index = 0 if tensor.dtype.is_floating_point else 1
        return torch.stack([world[r][index].to(tensor.dtype) for r in (0, 1)])

    for rank in (0, 1):
        local = gather_group_rewards(*world[rank], fake_all_gather, rank=rank).values
        torch.testing.assert_close(local, single[rank * 4 : rank * 4 + 4])
    assert not torch.allclose(single[:4], group_advantages(rewards[:4], groups[:4]).values)


def test_single_process_gather_is_plain():
    rewards, groups = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([3, 3, 3])
    torch.testing.assert_close(
        gather_group_rewards(rewards, groups, lambda t: t).values, group_advantages(rewards, groups).values
    )


def test_covariate_part_is_the_within_group_line():
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    motion = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0])  # group 1 does not vary: nothing to explain
    noise = torch.tensor([0.1, -0.1, -0.1, 0.1, 0.3, -0.2, 0.4])
    part = covariate_part(-0.5 * motion + noise, motion, groups)
    torch.testing.assert_close(part[:4], -0.5 * (motion[:4] - 2.5))  # the noise is orthogonal to the line
    assert torch.equal(part[4:], torch.zeros(3))


def test_covariate_part_leaves_nonfinite_samples_alone():
    groups = torch.zeros(5, dtype=torch.long)
    motion = torch.tensor([1.0, 2.0, float("nan"), 3.0, 4.0])
    values = torch.tensor([2.0, 4.0, 0.5, float("inf"), 8.0])
    part = covariate_part(values, motion, groups)
    assert part[2] == 0 and part[3] == 0  # NaN covariate, infinite value
    torch.testing.assert_close(part[[0, 1, 4]], 2.0 * (motion[[0, 1, 4]] - 7 / 3))  # the line through the rest


def test_control_ranks_a_group_at_equal_motion():
    """Consistency that falls with motion: plain advantages favour the still videos, controlled ones the rigid."""
    motion = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    rigid = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    consistency = 0.8 - 0.1 * motion + 0.05 * rigid
    groups = torch.zeros(6, dtype=torch.long)
    plain = group_advantages(consistency, groups).values
    assert plain[0] > plain[1] and plain.argmax() == 0  # the stillest video wins, rigid or not
    controlled = group_advantages(consistency, groups, controlled=consistency, covariate=motion).values
    assert (controlled[rigid == 1] > 0).all() and (controlled[rigid == 0] < 0).all()
    total = consistency + motion / 10  # a motion term beside it keeps its own credit
    mixed = group_advantages(total, groups, controlled=consistency, covariate=motion).values
    assert mixed.argmax() == 5 and mixed.argmin() == 0


def test_a_nonfinite_reward_stays_the_worst_of_its_controlled_group():
    """Taking out the motion part lowers the first video below the raw minimum; the unscored one still ranks last."""
    motion = torch.tensor([4.0, 6.0, 10.0, 0.0, 5.0])
    consistency = torch.tensor([0.2, 0.4, 0.3, 0.9, float("nan")])
    result = group_advantages(consistency, torch.zeros(5, dtype=torch.long), controlled=consistency, covariate=motion)
    assert result.num_nonfinite == 1 and result.values[4] == result.values.min()


def test_control_needs_both_columns():
    with pytest.raises(ValueError, match="both controlled and covariate"):
        group_advantages(torch.ones(3), torch.zeros(3, dtype=torch.long), controlled=torch.ones(3))


def test_control_split_across_processes_equals_one_process():
    rewards = torch.tensor([0.1, 0.9, 0.4, 0.2, 0.8, 0.3, 0.6, 0.5])
    controlled = torch.tensor([0.05, 0.5, 0.3, 0.1, 0.6, 0.1, 0.2, 0.4])
    motion = torch.tensor([3.0, 1.0, 2.0, 5.0, 0.5, 4.0, 2.5, 1.5])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0])
    single = group_advantages(rewards, groups, controlled=controlled, covariate=motion).values
    columns = [rewards, controlled, motion, groups]

    def fake_all_gather(tensor):
        full = next(
            c for c in columns if any(torch.equal(tensor, c[h * 4 : h * 4 + 4].to(tensor.dtype)) for h in (0, 1))
        )
        return full.to(tensor.dtype).view(2, 4)

    for rank in (0, 1):
        part = slice(rank * 4, rank * 4 + 4)
        local = gather_group_rewards(
            rewards[part], groups[part], fake_all_gather, rank=rank, controlled=controlled[part], covariate=motion[part]
        ).values
        torch.testing.assert_close(local, single[part])
    assert not torch.allclose(single, group_advantages(rewards, groups).values)
