"""World-R1's released training step on the tiny Wan: its recorded UniPC transitions re-score to a ratio of exactly 1
with the camera injection on, two samples give advantages of +-1, and one epoch's update is -A grad log p + beta
grad KL computed independently here."""

import math

import pytest
import torch

from world_r1.camera import CameraConfig
from world_r1.data import PromptDataModule
from world_r1.grpo import GRPOConfig, SamplingConfig, group_advantages, update_policy
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec
from world_r1.policy.schedule import wan_unipc_scheduler

PROMPTS = [
    "Camera pan left. A barn.",
    "Camera pan left. A barn.",
    "Camera orbit left, then push in. A hall.",
    "A hall.",
]


def release_module(model_dir: str, store_dtype: str = "fp32", beta: float = 0.004) -> WorldR1:
    module = WorldR1(
        policy=PolicyConfig(
            model=model_dir, dtype="fp32", lora=LoRAConfig(4, 8.0, init="gaussian"), max_sequence_length=32
        ),
        video=VideoSpec(32, 32, 9),
        sampling=SamplingConfig(
            train_steps=6, eval_steps=4, rollout="unipc", timestep_fraction=0.5, store_dtype=store_dtype
        ),
        grpo=GRPOConfig(clip_range=1e-3, beta=beta, micro_batch_size=1, max_grad_norm=1e9),
        camera=CameraConfig(enabled=True, reinject_steps=2),  # the release's warp and step-wise delta
    )
    module.configure_model()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a LoRA that changes the output, so the reference (adapter off) differs; seeded
        for param in module.policy.lora_parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    return module


def batch() -> dict:
    return {
        "prompts": PROMPTS,
        "step": 0,
        "group_ids": torch.tensor([0, 0, 1, 1]),
        "sample_ids": torch.arange(4),
        "phase": "main",
    }


def release_log_prob(v, x, x_next, sigma, sigma_next, sigma_max, sigma_min):
    """The release's formula, written out: a Gaussian around the Euler step, averaged over the latent elements."""
    mean = x + (sigma_next - sigma) * v
    std = (sigma_min + (sigma_max - sigma_min) * sigma) * math.sqrt(sigma - sigma_next)
    density = -((x_next - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)
    return density.flatten(1).mean(1), mean, std


@pytest.mark.parametrize("store_dtype", ["fp32", "bf16"])
def test_rescored_transitions_give_a_ratio_of_exactly_one_with_the_injection_on(tiny_wan_dir, store_dtype):
    module = release_module(tiny_wan_dir, store_dtype)
    rollout, guidance = module.sampler.rollout(batch())
    scheduler = wan_unipc_scheduler(3.0)
    scheduler.set_timesteps(6)
    sigmas = scheduler.sigmas.float()
    assert rollout.num_recorded == 3 and rollout.kernel.kind == "euler"  # floor(6 x 0.5) steps: 0, 1, 2
    assert rollout.kernel.sigma_max == pytest.approx(float(sigmas[0])) and rollout.kernel.sigma_min == 0.0
    for j in range(3):
        x, x_next = rollout.latents[:, j].float(), rollout.next_latents[:, j].float()
        assert float(rollout.sigmas[j]) == float(sigmas[j]) and float(rollout.sigmas_next[j]) == float(sigmas[j + 1])
        # the transformer is called at the scheduler's integer timestep, as WanPipeline does
        assert float(rollout.model_sigmas[j]) == pytest.approx(float(scheduler.timesteps[j]) / 1000, rel=1e-7)
        v = guidance.velocity(module.policy, x, float(rollout.model_sigmas[j]))
        log_prob, _, _ = release_log_prob(v, x, x_next, float(sigmas[j]), float(sigmas[j + 1]), float(sigmas[0]), 0.0)
        torch.testing.assert_close(torch.exp(log_prob - rollout.log_probs[:, j]), torch.ones(4), rtol=0, atol=1e-5)
        if j < 2:
            assert torch.equal(rollout.latents[:, j + 1], rollout.next_latents[:, j])  # one chain of states
    # the injection is part of the recorded transition: the first step's state is not the plain UniPC step's
    plain = release_module(tiny_wan_dir, store_dtype)
    plain.camera = CameraConfig(enabled=False)
    plain_rollout, _ = plain.sampler.rollout(batch())
    assert torch.equal(plain_rollout.latents[:, 0], rollout.latents[:, 0])  # the same plain starting noise x_T
    moved = (plain_rollout.next_latents[:, 0] - rollout.next_latents[:, 0]).flatten(1).abs().amax(1)
    assert bool((moved[:3] > 1e-4).all()) and float(moved[3]) == 0.0  # the prompt without camera words is untouched


def test_two_samples_per_prompt_give_advantages_of_plus_and_minus_one():
    rewards, groups = torch.tensor([0.3, 0.7, 0.5, 0.5, 2.0, -1.0]), torch.tensor([0, 0, 1, 1, 2, 2])
    values = group_advantages(rewards, groups).values
    torch.testing.assert_close(values, torch.tensor([-1.0, 1.0, 0.0, 0.0, 1.0, -1.0]), rtol=0, atol=1e-3)


def test_one_epoch_updates_by_minus_advantage_times_grad_log_p_plus_the_kl(tiny_wan_dir):
    beta = 0.5  # large, so the KL's share of the gradient is checked too
    module = release_module(tiny_wan_dir, beta=beta)
    rollout, guidance = module.sampler.rollout(batch())
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    params = module.policy.lora_parameters()
    captured = {}

    class Capture(torch.optim.SGD):  # the accumulated gradients, as the optimizer step sees them
        def step(self, closure=None):
            captured["grads"] = [p.grad.detach().clone() for p in params]

    generator = torch.Generator().manual_seed(0)
    backward = torch.Tensor.backward
    stats = update_policy(
        module.policy, rollout, advantages, guidance, module.grpo, Capture(params, lr=0.0), backward, generator
    ).stats
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-6) and stats["clip_fraction"] == 0.0
    # independently: the mean over samples and recorded steps of -A grad log p + beta grad KL
    sigmas, kernel = rollout.sigmas, rollout.kernel
    total = 0.0
    for b in range(4):
        one = guidance.select(torch.tensor([b]))
        for j in range(rollout.num_recorded):
            x, x_next = rollout.latents[b : b + 1, j].float(), rollout.next_latents[b : b + 1, j].float()
            sigma, sigma_next, model_sigma = (
                float(sigmas[j]),
                float(rollout.sigmas_next[j]),
                float(rollout.model_sigmas[j]),
            )
            log_prob, mean, std = release_log_prob(
                one.velocity(module.policy, x, model_sigma), x, x_next, sigma, sigma_next, kernel.sigma_max, 0.0
            )
            with torch.no_grad(), module.policy.reference():
                _, ref_mean, _ = release_log_prob(
                    one.velocity(module.policy, x, model_sigma), x, x_next, sigma, sigma_next, kernel.sigma_max, 0.0
                )
            kl = ((mean - ref_mean) ** 2).mean() / (2 * std**2)
            total = total + (-advantages[b] * log_prob.sum() + beta * kl)
    expected = torch.autograd.grad(total / (4 * rollout.num_recorded), params)
    for got, want in zip(captured["grads"], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    assert any(float(g.abs().sum()) > 0 for g in expected)


def test_bad_settings_end_with_one_line_naming_the_value_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"sampling\.rollout must be one of"):
        SamplingConfig(rollout="ddpm")
    with pytest.raises(ValueError, match=r"timestep_fraction=0.01 trains floor\(50 x 0.01\) = 0 of the 50 steps"):
        SamplingConfig(rollout="unipc", train_steps=50, timestep_fraction=0.01)
    with pytest.raises(ValueError, match=r"lora\.init must be one of"):
        LoRAConfig(init="xavier")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("A red barn in a field.\nA harbour at dawn.\n")
    data = PromptDataModule(train_prompts=str(prompts), decoupled_prompts=None, group_size=2, prompts_per_step=1)
    with pytest.raises(ValueError, match=r"No prompt of data\.train_prompts .* names a camera.*push in"):
        data.check_cameras()
    prompts.write_text("A red barn in a field.\nA harbour at dawn, camera pull out.\n")
    PromptDataModule(train_prompts=str(prompts), decoupled_prompts=None, group_size=2).check_cameras()  # one will do
