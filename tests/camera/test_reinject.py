"""The camera injections: the release's step-wise delta (its formula, per sample, renormalised) and the project's
re-injection (nothing at the first step or for unwarped samples, only the coarse part of the gap), and rollouts with
either keep exact log-probabilities."""

import pytest
import torch

from tests.camera.test_module_noise import camera_section, tiny_module
from world_r1.camera import CameraConfig
from world_r1.camera.reinject import NoiseReinjection, StepwiseDelta, low_pass
from world_r1.grpo import SamplingConfig
from world_r1.grpo.rollout import sample_rollout
from world_r1.grpo.sde import sde_step_with_logprob
from world_r1.policy import flow_sigmas
from world_r1.policy.guidance import Guidance

SHAPE = (2, 4, 3, 16, 16)


def _reinjection(noise, active=(1.0, 1.0), steps=8, strength=0.5, kernel=9):
    return NoiseReinjection(noise, torch.tensor(active), steps, strength, kernel)


def test_the_first_step_and_unwarped_samples_are_left_alone():
    noise, v, x_next = torch.randn(SHAPE), torch.randn(SHAPE), torch.randn(SHAPE)
    reinject = _reinjection(noise, active=(1.0, 0.0))
    # at sigma = 1 the state is the initial noise, whose noise component is itself: nothing to inject
    torch.testing.assert_close(reinject(0, noise, v, 1.0, x_next, 0.9), x_next, rtol=0, atol=0)
    moved = reinject(3, x_next, v, 0.7, torch.randn(SHAPE), 0.6)
    other = reinject(3, x_next, v, 0.7, moved, 0.6)
    assert not torch.equal(other[0], moved[0]) and torch.equal(other[1], moved[1])  # sample 1 was not warped
    assert torch.equal(reinject(8, x_next, v, 0.5, moved, 0.4), moved)  # from step `steps` on: unchanged


def test_only_the_coarse_part_of_the_gap_is_injected():
    x, v = torch.zeros(SHAPE), torch.zeros(SHAPE)  # a state whose noise component is 0
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1.0  # finest possible pattern
    fine = _reinjection(checker.expand(SHAPE).clone(), strength=1.0)(1, x, v, 0.5, x, 0.5)
    coarse = _reinjection(torch.full(SHAPE, 2.0), strength=0.4)(1, x, v, 0.5, x, 0.5)
    assert fine.abs().mean() < 0.03 * 0.5  # the checkerboard is filtered out (box of 9: a 1/81 residue)
    torch.testing.assert_close(coarse, torch.full(SHAPE, 0.5 * 0.4 * 2.0))  # a constant gap passes whole
    torch.testing.assert_close(low_pass(torch.full(SHAPE, 3.0), 9), torch.full(SHAPE, 3.0))  # borders too


def test_the_stepwise_delta_is_the_release_formula():
    generator = torch.Generator().manual_seed(0)
    start, warped, state = (torch.randn(SHAPE, generator=generator) for _ in range(3))
    inject = StepwiseDelta(start, warped, torch.tensor([1.0, 0.0]), steps=8, strength=0.35, kernel=3)
    # independently: 3x3 box with zero padding counted, unit per sample (unbiased std), linspace weights
    delta = torch.nn.functional.avg_pool3d(
        (warped - start).reshape(2 * 4, 3, 16, 16), (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=True
    ).reshape(SHAPE)
    unit = delta / (delta.flatten(1).std(dim=1).view(-1, 1, 1, 1, 1) + 1e-6)
    weight = torch.linspace(1.0, 0.1, 8)[2] / torch.linspace(1.0, 0.1, 8).sum()
    mean, std = state.flatten(1).mean(1).view(-1, 1, 1, 1, 1), state.flatten(1).std(1).view(-1, 1, 1, 1, 1)
    guided = state + 0.35 * weight * std * unit
    g_mean, g_std = guided.flatten(1).mean(1).view(-1, 1, 1, 1, 1), guided.flatten(1).std(1).view(-1, 1, 1, 1, 1)
    expected = (guided - g_mean) / (g_std + 1e-6) * std + mean
    out = inject(2, state, state, 0.5, state, 0.4)
    torch.testing.assert_close(out[0], expected[0], rtol=0, atol=1e-5)
    assert torch.equal(out[1], state[1])  # a sample without a camera is never touched
    assert torch.equal(inject(8, state, state, 0.5, state, 0.4), state)  # from step `steps` on: unchanged
    # the renormalisation keeps each sample's mean and std, and the state moves toward the warped noise's delta
    torch.testing.assert_close(out[0].std(), state[0].std(), rtol=1e-4, atol=0)
    assert float(((out[0] - state[0]) * unit[0]).mean()) > 0


def test_configs_inject_as_the_release_except_the_measured_mini_runs():
    for names in (
        ("wan21.yaml",),
        ("wan21.yaml", "overlays/wan21_sde.yaml"),
        ("wan21.yaml", "overlays/world_r1_small.yaml"),
        ("tiny.yaml",),
    ):
        camera = camera_section(*names)
        assert (camera.warp, camera.injection, camera.reinject_steps, camera.reinject_kernel) == (
            "gwtf",
            "stepwise",
            8,
            9,
        ), names
    mini = camera_section("mini.yaml")
    assert (mini.warp, mini.injection, mini.reinject_steps) == ("transport", "initial", 0)
    with pytest.raises(ValueError, match="reinject_kernel"):
        CameraConfig(reinject_kernel=4)


def test_rollouts_with_re_injection_keep_exact_log_probabilities(tiny_wan_dir):
    camera = CameraConfig(
        enabled=True, warp="transport", injection="initial", strength=0.5, reinject_steps=3, reinject_kernel=3
    )
    module = tiny_module(tiny_wan_dir, camera)
    prompts = ["Camera pan left. A barn.", "Camera fixed. A barn."]
    start = module.sampler.starting_noise([5, 6], prompts)
    noise, reinjection = start.noise, start.injection
    assert reinjection.active.tolist() == [1.0, 0.0]  # the static prompt's noise is plain: never re-injected
    embeds = module.policy.encode_prompts(prompts)
    config = SamplingConfig(train_steps=4, sde_window=2, sde_window_max_start=2, guidance_scale=1.0)
    sigmas = flow_sigmas(4, 3.0)
    guidance = Guidance(embeds, None, 1.0)
    kwargs = (module.policy, noise, guidance, sigmas, config, [1, 2], torch.Generator().manual_seed(0))
    with_it = sample_rollout(*kwargs, injection=reinjection)
    without = sample_rollout(*kwargs[:-1], torch.Generator().manual_seed(0))
    assert (with_it.final[0] - without.final[0]).abs().max() > 1e-3  # the warped sample is steered
    torch.testing.assert_close(with_it.final[1], without.final[1])  # the static one is not
    for j, step in enumerate([1, 2]):  # re-scoring each recorded step from its recorded state: ratio exactly 1
        x = with_it.latents[:, j]
        v = module.policy.velocity(x, float(sigmas[step]), embeds)
        scored = sde_step_with_logprob(
            v,
            x,
            float(sigmas[step]),
            float(sigmas[step + 1]),
            config.noise_level,
            prev_sample=with_it.next_latents[:, j],
        )
        torch.testing.assert_close(scored.log_prob, with_it.log_probs[:, j], rtol=0, atol=1e-5)
