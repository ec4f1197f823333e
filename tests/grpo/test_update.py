"""The policy update outside a Trainer: micro-batches accumulate the gradient of one batch, a non-finite loss drops
the update and too many in a row stop the run, and the training step's update is exactly this function's."""

import lightning as L
import pytest
import torch

from tests.helpers import StepOutputs, bare_trainer, latents, randomize_lora
from world_r1.data import PromptDataModule
from world_r1.grpo import GRPOConfig, SamplingConfig, step_loss, update_policy
from world_r1.grpo.rollout import Rollout, sample_rollout
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec, WanPolicy, flow_sigmas
from world_r1.policy.guidance import Guidance
from world_r1.sampling import Sampler
from world_r1.seeding import derive_seed

ADVANTAGES = torch.tensor([1.0, -1.0, 0.5, -0.25])


@pytest.fixture(scope="module")
def setting(tiny_wan_dir) -> tuple[WanPolicy, Rollout, Guidance]:
    """A policy with a LoRA that changes its output (so the KL is not zero) and a 4-sample rollout of 2 SDE steps."""
    policy = WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=16)
    randomize_lora(policy, scale=0.3)
    guidance = Guidance(policy.encode_prompts(["a", "b", "c", "d"]), policy.encode_negative(4), 4.0)
    config = SamplingConfig(train_steps=3, sde_window=2, sde_window_max_start=1)
    generator = torch.Generator().manual_seed(0)
    rollout = sample_rollout(policy, latents(4), guidance, flow_sigmas(3), config, [0, 1], generator)
    return policy, rollout, guidance


class _Capture(torch.optim.SGD):
    """Keeps the accumulated gradients the update would step with, and does not step."""

    def step(self, closure=None) -> None:
        self.grads = [p.grad.detach().clone() for group in self.param_groups for p in group["params"]]


def _update(setting, grpo: GRPOConfig, advantages=ADVANTAGES, optimizer=None, nonfinite_in_a_row: int = 0):
    policy, rollout, guidance = setting
    optimizer = optimizer or _Capture(policy.lora_parameters(), lr=0.0)
    generator = torch.Generator().manual_seed(1)
    update = update_policy(
        policy, rollout, advantages, guidance, grpo, optimizer, torch.Tensor.backward, generator, nonfinite_in_a_row
    )
    return update, optimizer


@pytest.mark.parametrize("micro_batch_size", [1, 3])
def test_micro_batches_accumulate_the_gradient_of_one_batch(setting, micro_batch_size):
    whole = GRPOConfig(beta=0.1, micro_batch_size=4, max_grad_norm=1e9)
    one, batch = _update(setting, whole)
    split = GRPOConfig(beta=0.1, micro_batch_size=micro_batch_size, max_grad_norm=1e9)
    many, micro = _update(setting, split)
    assert any(float(g.abs().max()) > 0 for g in batch.grads)
    for got, want in zip(micro.grads, batch.grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-8)
    assert one.stats.keys() == many.stats.keys() >= {"loss", "kl", "ratio", "clip_fraction", "grad_norm"}
    for name, value in one.stats.items():
        assert many.stats[name] == pytest.approx(value, rel=1e-4, abs=1e-8), name
    assert one.stats["ratio"] == pytest.approx(1.0, abs=1e-6) and one.stats["kl"] > 0  # unchanged weights


def test_the_loss_of_one_step_is_the_mean_of_its_samples(setting):
    policy, rollout, guidance = setting
    grpo = GRPOConfig(beta=0.1)
    both = step_loss(policy, rollout, 1, torch.tensor([0, 2]), ADVANTAGES, guidance, grpo)
    parts = [step_loss(policy, rollout, 1, torch.tensor([i]), ADVANTAGES, guidance, grpo) for i in (0, 2)]
    torch.testing.assert_close(both.loss, (parts[0].loss + parts[1].loss) / 2, rtol=1e-5, atol=1e-7)
    assert float(both.loss.detach()) != pytest.approx(float(parts[0].loss.detach()))


def test_a_non_finite_loss_drops_the_update_and_too_many_in_a_row_stop(setting):
    policy = setting[0]
    before = [p.detach().clone() for p in policy.lora_parameters()]
    grpo = GRPOConfig(max_nonfinite_updates=2, micro_batch_size=2, lr=1e-2)
    poisoned = torch.tensor([1.0, float("nan"), 0.5, -0.25])
    optimizer = torch.optim.SGD(policy.lora_parameters(), lr=1e-2)
    dropped, _ = _update(setting, grpo, poisoned, optimizer)
    assert dropped.nonfinite_in_a_row == 1 and dropped.stats["grad_norm"] == 0.0
    assert all(p.grad is None for p in policy.lora_parameters())  # nothing left to leak into the next update
    assert all(torch.equal(a, b) for a, b in zip(before, policy.lora_parameters(), strict=True))
    with pytest.raises(RuntimeError, match=r"2 policy updates in a row had a non-finite loss.*max_nonfinite_updates"):
        _update(setting, grpo, poisoned, optimizer, nonfinite_in_a_row=1)
    assert all(torch.equal(a, b) for a, b in zip(before, policy.lora_parameters(), strict=True))
    try:
        applied, _ = _update(setting, grpo, ADVANTAGES, optimizer, nonfinite_in_a_row=1)
        assert applied.nonfinite_in_a_row == 0 and applied.stats["grad_norm"] > 0  # a finite update resets the count
        assert any(not torch.equal(a, b) for a, b in zip(before, policy.lora_parameters(), strict=True))
    finally:
        with torch.no_grad():  # the module-scoped policy, as the other tests expect it
            for param, value in zip(policy.lora_parameters(), before, strict=True):
                param.copy_(value)


class _Batches(L.Callback):
    """Keeps every training batch as the step received it."""

    def __init__(self) -> None:
        self.batches: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append(batch)


def test_the_training_steps_update_is_this_function_outside_a_trainer(tiny_wan_dir, tmp_path):
    sampling = SamplingConfig(train_steps=4, sde_window=2, sde_window_max_start=2)
    grpo = GRPOConfig(micro_batch_size=2, beta=0.01, lr=1e-2, inner_epochs=2, train_fraction=0.5)
    module = WorldR1(
        policy=PolicyConfig(model=tiny_wan_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=16),
        video=VideoSpec(32, 32, 5),
        sampling=sampling,
        grpo=grpo,
        seed=3,
    )
    module.configure_model()
    start = [p.detach().clone() for p in module.policy.lora_parameters()]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Camera pan left. A barn.\nCamera fixed. A library.\n")
    data = PromptDataModule(train_prompts=str(prompts), decoupled_prompts=None, group_size=2, prompts_per_step=2)
    steps, batches = StepOutputs(), _Batches()
    bare_trainer(1, default_root_dir=tmp_path, callbacks=[steps, batches]).fit(module, data)
    trained = [p.detach().clone() for p in module.policy.lora_parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(start, trained, strict=True))

    with torch.no_grad():
        for param, value in zip(module.policy.lora_parameters(), start, strict=True):
            param.copy_(value)
    (outputs,), (batch,) = steps.outputs, batches.batches
    rollout, guidance = Sampler(module.policy, module.video, sampling, module.camera, seed=3).rollout(batch)
    optimizer = torch.optim.AdamW(module.policy.lora_parameters(), lr=grpo.lr, weight_decay=grpo.weight_decay)
    generator = torch.Generator().manual_seed(derive_seed(3, "update", 0, 0))
    advantages = outputs["advantages"]
    update_policy(module.policy, rollout, advantages, guidance, grpo, optimizer, torch.Tensor.backward, generator)
    for got, want in zip(module.policy.lora_parameters(), trained, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
