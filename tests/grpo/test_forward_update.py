"""The forward-process update (world_r1.grpo.forward_update) and its place in the module: AWM with unit advantages is
the flow-matching loss through the real update path, NFT's step matches its formula on a one-parameter policy, the
old adapter switches, follows and resumes exactly, and nonsensical settings stop at construction."""

from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import bare_trainer
from world_r1.checkpoint_io import CheckedCheckpointIO
from world_r1.data import PromptDataModule
from world_r1.grpo import ForwardRLConfig, GRPOConfig, SamplingConfig
from world_r1.grpo.forward import flow_target, noised, sample_training_sigmas
from world_r1.grpo.forward_update import forward_chunks, forward_update
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec, WanPolicy, flow_sigmas
from world_r1.policy.guidance import Guidance

SEED = 7


def _draws(batch: int, config: ForwardRLConfig, schedule, policy, micro: int, shape) -> list[tuple]:
    """The noise levels, micro-batches and noise ``forward_update`` draws from ``SEED`` for one epoch, in its order:
    the seeded protocol that makes a run and its resume draw alike."""
    generator = torch.Generator().manual_seed(SEED)
    rows = config.timesteps_per_sample
    sigmas = sample_training_sigmas(
        batch, generator, config.sigma_distribution, rows, config.sigma_shift, schedule, config.shared_sigmas
    )
    order = torch.randperm(batch, generator=generator)
    draws = []
    for j in range(rows):
        for index in forward_chunks(policy, sigmas[j], order, micro):
            draws.append((index, sigmas[j, index], torch.randn((len(index), *shape), generator=generator)))
    return draws


def test_awm_with_unit_advantages_is_the_flow_matching_loss_through_the_update(tiny_wan_dir):
    policy = WanPolicy.from_pretrained(
        tiny_wan_dir, dtype="fp32", lora=LoRAConfig(4, 8.0, init="gaussian"), max_sequence_length=16
    )
    batch, shape = 3, (16, 2, 4, 4)
    final = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))
    guidance = Guidance(policy.encode_prompts(["a", "b", "c"]), None, 1.0)
    config = ForwardRLConfig(
        algorithm="awm", timesteps_per_sample=2, awm_power=1.0, awm_sigma_weight=False, kl_beta=0.0, adv_clip=1.0
    )
    schedule = flow_sigmas(6, 3.0)
    grpo = GRPOConfig(micro_batch_size=2, max_grad_norm=1e9)
    # the pretraining loss written out on the same samples, noise levels and noise: mean over (sample, level)
    params = policy.lora_parameters()
    reference = 0.0
    draws = _draws(batch, config, schedule, policy, grpo.micro_batch_size, shape)
    for index, sigma, noise in draws:
        x0 = final[index]
        t = sigma.view(-1, 1, 1, 1, 1)
        v = policy.velocity((1 - t) * x0 + t * noise, sigma, guidance.prompt_embeds[index])
        per_sample = F.mse_loss(v, noise - x0, reduction="none").mean(dim=(1, 2, 3, 4))
        reference = reference + per_sample.sum() / (batch * config.timesteps_per_sample)
    wanted = torch.autograd.grad(reference, params)
    before = [p.detach().clone() for p in params]
    out = forward_update(
        policy,
        final,
        schedule,
        torch.ones(batch),
        guidance,
        config,
        grpo,
        torch.optim.SGD(params, lr=1.0),  # the step is minus the gradient
        lambda loss: loss.backward(),
        torch.Generator().manual_seed(SEED),
    )
    assert out.stats["loss"] == pytest.approx(float(reference.detach()), rel=1e-5)
    for old, new, grad in zip(before, params, wanted, strict=True):
        torch.testing.assert_close(old - new.detach(), grad, rtol=1e-4, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in wanted)


class ScalarPolicy(torch.nn.Module):
    """A one-parameter velocity ``v = theta x`` with an old copy ``theta_old``: NFT's update by hand."""

    adapted: ClassVar[list[str]] = ["transformer"]

    def __init__(self, theta: float, theta_old: float) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(theta))
        self.register_buffer("theta_old", torch.tensor(theta_old))
        self.old_active = False

    def expert_name(self, sigma: float) -> str:
        return "transformer"

    @contextmanager
    def adapter(self, name: str):
        self.old_active = True
        yield
        self.old_active = False

    def velocity(self, latents, sigma, prompt_embeds, *args) -> torch.Tensor:
        return (self.theta_old if self.old_active else self.theta) * latents

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        return [self.theta]

    def update_old(self, decay: float) -> None:
        self.theta_old.mul_(decay).add_((1 - decay) * self.theta.detach())


def test_nft_step_matches_its_formula_on_a_one_parameter_policy():
    theta, theta_old, beta, lr = 0.3, 0.5, 0.5, 0.1
    policy = ScalarPolicy(theta, theta_old)
    final = torch.tensor([[1.0, -2.0], [0.5, 1.5]])
    advantages = torch.tensor([2.0, -1.0])
    config = ForwardRLConfig(
        algorithm="nft", beta=beta, timesteps_per_sample=1, sigma_distribution="uniform", sigma_shift=1.0,
        adaptive_weighting=False, kl_beta=0.0, old_decay_rate=0.2, old_decay_max=0.9,
    )  # fmt: skip
    grpo = GRPOConfig(micro_batch_size=2, max_grad_norm=1e9)
    draws = _draws(2, config, None, policy, 2, (2,))
    out = forward_update(
        policy,
        final,
        None,
        advantages,
        Guidance(torch.zeros(2, 1, 1), None, 1.0),
        config,
        grpo,
        torch.optim.SGD([policy.theta], lr=lr),
        lambda loss: loss.backward(),
        torch.Generator().manual_seed(SEED),
        optimizer_steps=2,
    )
    # by hand: r = 1/2 + A / (2 * 5); v+ = (1-b) v_old + b v, v- = (1+b) v_old - b v, all = w x_t; the mean over
    # both samples (each micro-batch weighted by its share of the batch)
    w_pos, w_neg = (1 - beta) * theta_old + beta * theta, (1 + beta) * theta_old - beta * theta
    loss = grad = 0.0
    for index, sigma, noise in draws:
        x0, eps, s = final[index], noise, sigma[:, None]
        x_t, target = (1 - s) * x0 + s * eps, eps - x0
        torch.testing.assert_close(noised(x0, eps, sigma), x_t)  # the hand-made x_t is the update's
        torch.testing.assert_close(flow_target(x0, eps), target)
        r = (0.5 + advantages[index] / 10)[:, None]
        pos, neg = w_pos * x_t - target, w_neg * x_t - target
        loss += float((r * pos**2 + (1 - r) * neg**2).mean(1).sum()) / 2
        grad += float((2 * beta * x_t * (r * pos - (1 - r) * neg)).mean(1).sum()) / 2
    scale = 5.0 / beta  # the released loss scale adv_clip / beta
    assert out.stats["loss"] == pytest.approx(scale * float(loss), rel=1e-5)
    new_theta = theta - lr * scale * float(grad)
    assert float(policy.theta.detach()) == pytest.approx(new_theta, rel=1e-5)
    decay = 0.2 * 3  # the old policy's decay after the third optimizer step
    assert float(policy.theta_old) == pytest.approx(decay * theta_old + (1 - decay) * new_theta, rel=1e-5)


def test_the_old_adapter_switches_and_follows(tiny_wan_dir):
    policy = WanPolicy.from_pretrained(
        tiny_wan_dir, dtype="fp32", lora=LoRAConfig(4, 8.0, init="gaussian"), max_sequence_length=16
    )
    trained = len(policy.lora_parameters())
    policy.add_old_adapter()
    assert len(policy.lora_parameters()) == trained  # the old adapter is frozen
    x = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    embeds = policy.encode_prompts(["a"])
    with torch.no_grad():
        start = policy.velocity(x, 0.6, embeds)
        for p in policy.lora_parameters():
            p.add_(0.05)
        moved = policy.velocity(x, 0.6, embeds)
        with policy.adapter("old"):
            old = policy.velocity(x, 0.6, embeds)
        policy.update_old(0.0)
        with policy.adapter("old"):
            followed = policy.velocity(x, 0.6, embeds)
    assert not torch.allclose(start, moved)
    torch.testing.assert_close(old, start)
    torch.testing.assert_close(followed, moved)
    assert len(policy.lora_parameters()) == trained and all(p.requires_grad for p in policy.lora_parameters())


def _nft_module(model_dir: str) -> WorldR1:
    torch.manual_seed(0)  # the LoRA's random initialisation
    module = WorldR1(
        policy=PolicyConfig(model=model_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=32),
        video=VideoSpec(32, 32, 5),
        sampling=SamplingConfig(train_steps=2, eval_steps=2, rollout="ode"),
        grpo=GRPOConfig(lr=1e-2),
        forward_rl=ForwardRLConfig(timesteps_per_sample=1, old_decay_rate=0.3, kl_beta=0.0),
    )
    module.configure_model()
    return module


def _fit(module: WorldR1, tmp_path: Path, steps: int, ckpt_path=None):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Camera fixed. A barn.\nCamera fixed. A library.\n")
    data = PromptDataModule(train_prompts=str(prompts), decoupled_prompts=None, group_size=2, prompts_per_step=2)
    trainer = bare_trainer(steps, default_root_dir=tmp_path, plugins=[CheckedCheckpointIO()])  # the CLI's reader
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return trainer


def _adapters(module: WorldR1) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.policy.transformer.state_dict().items() if "lora_" in k}


def test_nft_resumes_exactly_with_its_old_adapter(tiny_wan_dir, tmp_path):
    straight = _nft_module(tiny_wan_dir)
    _fit(straight, tmp_path, steps=3)
    first = _nft_module(tiny_wan_dir)
    trainer = _fit(first, tmp_path, steps=2)
    path = tmp_path / "two.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["state_dict"]
    assert any(".old." in key for key in state)  # the old policy travels with the checkpoint
    resumed = _nft_module(tiny_wan_dir)
    _fit(resumed, tmp_path, steps=3, ckpt_path=path)
    want, got = _adapters(straight), _adapters(resumed)
    assert want.keys() == got.keys() and any(".old." in key for key in want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    old = [k for k in want if ".old." in k]
    assert any(not torch.equal(want[k], want[k.replace(".old.", ".default.")]) for k in old)  # it lags


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampling": SamplingConfig(rollout="ode")}, r"'ode' records no transitions.*model.forward_rl"),
        (
            {"sampling": SamplingConfig(rollout="sde"), "forward_rl": ForwardRLConfig(algorithm="nft")},
            r"rollout 'sde'.*use sampling.rollout: ode",
        ),
        (
            {"sampling": SamplingConfig(rollout="unipc"), "forward_rl": ForwardRLConfig(algorithm="nft")},
            r"rollout 'unipc'.*use sampling.rollout: ode",
        ),
    ],
)
def test_settings_that_make_no_sense_together_stop_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        WorldR1(**kwargs)
    assert "\n" not in str(error.value)


def test_an_unknown_algorithm_is_named():
    with pytest.raises(ValueError, match=r"forward_rl.algorithm.*'ppo'") as error:
        ForwardRLConfig(algorithm="ppo")
    assert "\n" not in str(error.value)
    WorldR1(sampling=SamplingConfig(rollout="unipc"), forward_rl=ForwardRLConfig(algorithm="awm"))  # AWM may
