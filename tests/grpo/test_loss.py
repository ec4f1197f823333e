"""The clipped surrogate and the KL term against hand-computed numbers."""

import math

import pytest
import torch

from world_r1.grpo import gaussian_kl, grpo_loss


def test_clipped_loss_by_hand():
    # ratios e^0.2 ~ 1.2214 and e^-0.3 ~ 0.7408 with clip 0.1; advantages +1 and -2
    log_prob = torch.tensor([0.2, -0.3], requires_grad=True)
    out = grpo_loss(log_prob, torch.zeros(2), torch.tensor([1.0, -2.0]), clip_range=0.1)
    # sample 0: max(-1*1.2214, -1*1.1) = -1.1 (clipped, no gradient)
    # sample 1: max(2*0.7408, 2*0.9) = 1.8 (clipped, no gradient)
    assert out.loss.item() == pytest.approx((-1.1 + 1.8) / 2, abs=1e-6)
    assert out.clip_fraction.item() == 1.0
    assert out.approx_kl.item() == pytest.approx(0.5 * (0.04 + 0.09) / 2)
    out.loss.backward()
    assert torch.equal(log_prob.grad, torch.zeros(2))


def test_unclipped_gradient_by_hand():
    log_prob = torch.tensor([0.05, -0.02], requires_grad=True)
    out = grpo_loss(log_prob, torch.zeros(2), torch.tensor([1.0, -2.0]), clip_range=0.2)
    expected = (-1 * math.exp(0.05) + 2 * math.exp(-0.02)) / 2
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    out.loss.backward()
    torch.testing.assert_close(log_prob.grad, torch.tensor([-math.exp(0.05) / 2, 2 * math.exp(-0.02) / 2]))
    assert out.clip_fraction.item() == 0.0


def test_unchanged_policy_has_unit_ratio_and_zero_approx_kl():
    lp = torch.tensor([-1.3, 0.4, 2.0])
    out = grpo_loss(lp, lp.clone(), torch.tensor([1.0, 0.0, -1.0]), 1e-3)
    assert out.ratio.item() == 1.0 and out.approx_kl.item() == 0.0 and out.clip_fraction.item() == 0.0


def test_kl_term_formula_and_weight():
    mean = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    ref, std = torch.tensor([[0.0, 2.0], [0.0, 1.0]]), torch.tensor([[0.5], [1.0]])
    kl = gaussian_kl(mean, ref, std)
    torch.testing.assert_close(kl, torch.tensor([(1 / (2 * 0.25)) / 2, (1 / 2) / 2]))
    out = grpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), 1e-3, beta=0.5, mean=mean, ref_mean=ref, std=std)
    assert out.loss.item() == pytest.approx(0.5 * kl.mean().item())
    out.loss.backward()
    assert mean.grad is not None and mean.grad.abs().sum() > 0


def test_kl_needs_its_inputs():
    with pytest.raises(ValueError, match="beta"):
        grpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), 1e-3, beta=0.1)
