"""The SDE step: exact Gaussian log-probabilities, the ODE limit, and the sampled distribution."""

import math

import pytest
import torch

from world_r1.grpo import noise_scale, ode_step, sde_step_with_logprob

SCHEDULES = ["flow_grpo", "linear"]


def _inputs(batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 2, 3, 3, generator=g), torch.randn(batch, 4, 2, 3, 3, generator=g)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("sigmas", [(0.8, 0.6), (torch.tensor([1.0, 0.7, 0.3]), torch.tensor([0.9, 0.5, 0.0]))])
def test_log_prob_equals_torch_normal(schedule, sigmas):
    v, x = _inputs()
    out = sde_step_with_logprob(
        v, x, *sigmas, noise_level=0.7, noise_schedule=schedule, generator=torch.Generator().manual_seed(1)
    )
    expected = (
        torch.distributions.Normal(out.mean, out.std.expand_as(out.mean)).log_prob(out.prev_sample).flatten(1).mean(1)
    )
    torch.testing.assert_close(out.log_prob, expected, rtol=1e-5, atol=1e-5)
    assert out.log_prob.shape == (3,)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_scoring_a_given_sample_matches_sampling(schedule):
    v, x = _inputs()
    sampled = sde_step_with_logprob(
        v, x, 0.5, 0.4, 0.7, generator=torch.Generator().manual_seed(2), noise_schedule=schedule
    )
    scored = sde_step_with_logprob(v, x, 0.5, 0.4, 0.7, prev_sample=sampled.prev_sample, noise_schedule=schedule)
    assert torch.equal(scored.log_prob, sampled.log_prob)
    other = torch.randn_like(x)
    expected = (
        torch.distributions.Normal(scored.mean, scored.std.expand_as(scored.mean)).log_prob(other).flatten(1).mean(1)
    )
    rescored = sde_step_with_logprob(v, x, 0.5, 0.4, 0.7, prev_sample=other, noise_schedule=schedule)
    torch.testing.assert_close(rescored.log_prob, expected)


def test_zero_noise_is_the_euler_step():
    v, x = _inputs()
    out = sde_step_with_logprob(v, x, 0.9, 0.6, noise_level=0.0)
    torch.testing.assert_close(out.prev_sample, x - 0.3 * v)
    torch.testing.assert_close(out.prev_sample, ode_step(v, x, 0.9, 0.6))
    assert torch.all(out.std == 0) and torch.all(out.log_prob == 0)


def test_mean_formula_by_hand():
    x, v = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 0.25]])
    sigma, nxt, a = 0.6, 0.4, 0.7
    s = a * math.sqrt(sigma / (1 - sigma))
    expected_mean = x - 0.2 * (v + s**2 / (2 * sigma) * (x + (1 - sigma) * v))
    out = sde_step_with_logprob(v, x, sigma, nxt, a, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.mean, expected_mean)
    torch.testing.assert_close(out.std.flatten(), torch.tensor([s * math.sqrt(0.2)]))


def test_first_step_uses_the_first_sigma_below_one():
    """At sigma = 1, Flow-GRPO evaluates sqrt(sigma / (1 - sigma)) with the schedule's next sigma in the denominator."""
    v, x = _inputs()
    out = sde_step_with_logprob(v, x, 1.0, 0.9, 0.7, generator=torch.Generator().manual_seed(0))
    s = 0.7 * math.sqrt(1.0 / (1 - 0.9))
    torch.testing.assert_close(out.std.flatten(), torch.full((3,), s * math.sqrt(0.1)))
    torch.testing.assert_close(out.mean, x - 0.1 * (v + s**2 / 2 * x))
    assert torch.isfinite(out.prev_sample).all() and torch.isfinite(out.log_prob).all()


def test_linear_schedule_values():
    sigma = torch.tensor([1.0, 0.5])
    scale = noise_scale(sigma, sigma - 0.1, 0.7, "linear", sigma_max=1.0, sigma_min=0.1)
    torch.testing.assert_close(scale, 0.7 * (0.1 + 0.9 * sigma))


def test_samples_follow_the_stated_gaussian():
    n = 20000
    v, x = torch.full((n, 1), 0.3), torch.full((n, 1), -0.5)
    out = sde_step_with_logprob(v, x, 0.7, 0.5, 0.7, generator=torch.Generator().manual_seed(3))
    mean, std = out.mean[0, 0], out.std[0, 0]
    tol_mean, tol_std = 5 * std / math.sqrt(n), 5 * std * math.sqrt(2 / n)
    assert abs(out.prev_sample.mean() - mean) < tol_mean
    assert abs(out.prev_sample.std() - std) < tol_std


def test_bf16_inputs_compute_in_float32():
    v, x = _inputs()
    out = sde_step_with_logprob(v.bfloat16(), x.bfloat16(), 0.5, 0.3, 0.7, generator=torch.Generator().manual_seed(0))
    assert out.prev_sample.dtype == torch.bfloat16 and out.log_prob.dtype == torch.float32


def test_bad_arguments():
    v, x = _inputs()
    with pytest.raises(ValueError, match="smaller"):
        sde_step_with_logprob(v, x, 0.3, 0.5, 0.7)
    with pytest.raises(ValueError, match="noise_schedule"):
        sde_step_with_logprob(v, x, 0.5, 0.3, 0.7, noise_schedule="cosine")
    with pytest.raises(ValueError, match="shape"):
        sde_step_with_logprob(v, x, torch.tensor([0.5, 0.4]), 0.3, 0.7)


def test_a_mask_leaves_held_elements_out_of_the_log_probability():
    x, v = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2)
    mask = torch.ones(1, 1, 3, 1, 1)
    mask[:, :, 0] = 0  # the first latent frame is held (an image-to-video condition)
    step = sde_step_with_logprob(v, x, 0.8, 0.6, noise_level=0.7, generator=torch.Generator().manual_seed(0))
    held = step.prev_sample.clone()
    held[:, :, 0] = 123.0  # whatever the held frame is, it does not count
    masked = sde_step_with_logprob(v, x, 0.8, 0.6, noise_level=0.7, prev_sample=held, mask=mask)
    free_only = sde_step_with_logprob(
        v[:, :, 1:], x[:, :, 1:], 0.8, 0.6, noise_level=0.7, prev_sample=step.prev_sample[:, :, 1:]
    )
    torch.testing.assert_close(masked.log_prob, free_only.log_prob)
