"""Benchmark 2: the cost of one trained SDE step, and what Flow-GRPO-Fast saves per training iteration.

A trained step is exactly :func:`world_r1.grpo.update.step_loss` (CFG forward with grad, reference forward with the
adapter off for the KL, clipped surrogate) plus its backward, measured against one plain no-grad CFG forward of the
same micro-batch. The iteration comparison runs the training step's own :func:`world_r1.grpo.update.update_policy`
outside a Trainer: rollout + update on the recorded steps + AdamW step, with a window of 2 SDE steps (Fast) against
SDE on every step (full Flow-GRPO).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchmarks.common import ModelSize, build_bench_policy, initial_noise, interleaved_medians, prompt_embeds
from benchmarks.report import figure
from world_r1.grpo import GRPOConfig, SamplingConfig, step_loss, update_policy
from world_r1.grpo.rollout import sample_rollout
from world_r1.policy import VideoSpec, WanPolicy, flow_sigmas
from world_r1.policy.guidance import Guidance
from world_r1.seeding import derive_seed


def _optimizer(policy: WanPolicy, grpo: GRPOConfig) -> torch.optim.Optimizer:
    """The AdamW the training module configures (``WorldR1.configure_optimizers``)."""
    return torch.optim.AdamW(policy.lora_parameters(), lr=grpo.lr, weight_decay=grpo.weight_decay, betas=(0.9, 0.999))


def training_functions(
    policy: WanPolicy, spec: VideoSpec, batch: int, steps: int, window: int = 2, text_tokens: int = 64
) -> dict[str, Callable[[], object]]:
    """No-argument closures to time: ``cfg_forward`` (no grad), ``trained_step`` (+ ``_checkpointed``), and one
    training iteration (rollout + ``update_policy``) with Flow-GRPO-Fast (``iteration_fast``) or on every step
    (``_full``)."""
    device = policy.device
    noise = initial_noise(spec, batch, device=device)
    cond, neg = prompt_embeds(batch, policy.transformer.config.text_dim, text_tokens, device=device)
    advantages = torch.linspace(-1, 1, batch, device=device)
    configs = {
        "fast": SamplingConfig(train_steps=steps, sde_window=window, sde_window_max_start=steps - window),
        "full": SamplingConfig(train_steps=steps, sde_window=0),
    }
    grpo = GRPOConfig(micro_batch_size=batch)
    optimizers = {name: _optimizer(policy, grpo) for name in configs}
    sigmas = flow_sigmas(steps, configs["fast"].flow_shift)
    guidance = Guidance(cond, neg, configs["fast"].guidance_scale)
    rollout = sample_rollout(
        policy, noise, guidance, sigmas, configs["fast"], list(range(window)), torch.Generator(device).manual_seed(0)
    )
    index = torch.arange(batch, device=device)

    def trained_step() -> None:
        out = step_loss(policy, rollout, 0, index, advantages, guidance, grpo)
        out.loss.backward()
        policy.transformer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def cfg_forward() -> None:
        guidance.velocity(policy, noise, float(sigmas[0]))

    def checkpointed_step() -> None:
        policy.transformer.enable_gradient_checkpointing()
        try:
            trained_step()
        finally:
            policy.transformer.disable_gradient_checkpointing()

    def iteration(name: str) -> None:
        config = configs[name]
        sde_steps = config.sde_steps(torch.Generator().manual_seed(1))
        generator = torch.Generator(device).manual_seed(2)
        trajectory = sample_rollout(policy, noise, guidance, sigmas, config, sde_steps, generator)
        order = torch.Generator().manual_seed(derive_seed(0, "update", 0, 0))  # the module's draw at step 0, seed 0
        update_policy(policy, trajectory, advantages, guidance, grpo, optimizers[name], torch.Tensor.backward, order)

    return {
        "cfg_forward": cfg_forward,
        "trained_step": trained_step,
        "trained_step_checkpointed": checkpointed_step,
        "iteration_fast": lambda: iteration("fast"),
        "iteration_full": lambda: iteration("full"),
    }


def run(
    size: ModelSize | None = None,
    spec: VideoSpec | None = None,
    batch: int = 2,
    steps: int = 10,
    window: int = 2,
    repeats: int = 5,
) -> dict:
    """Trained step / plain CFG forward (with and without gradient checkpointing), samples/s, Fast vs full speed-up."""
    size = size or ModelSize()
    spec = spec or VideoSpec(height=128, width=128, num_frames=17)
    policy, _ = build_bench_policy(size)
    seconds = interleaved_medians(training_functions(policy, spec, batch, steps, window, size.text_tokens), repeats)
    # the same speed-up predicted from its parts: a rollout is `steps` CFG forwards, each trained step as measured
    rollout_s, step_s = steps * seconds["cfg_forward"], seconds["trained_step"]
    predicted = (rollout_s + steps * step_s) / (rollout_s + window * step_s)
    return {
        "config": {
            "model": size.__dict__,
            "video": spec.__dict__,
            "micro_batch": batch,
            "steps": steps,
            "fast_window": window,
            "repeats": repeats,
        },
        "seconds": seconds,
        "figures": {
            "trained step / CFG forward": figure(
                seconds["trained_step"] / seconds["cfg_forward"], "x", note="fwd+bwd with CFG + reference fwd for KL"
            ),
            "trained step / CFG forward (grad. checkpointing)": figure(
                seconds["trained_step_checkpointed"] / seconds["cfg_forward"], "x"
            ),
            "gradient checkpointing slowdown": figure(
                seconds["trained_step_checkpointed"] / seconds["trained_step"], "x"
            ),
            "trained samples/s (one SDE step each)": figure(batch / seconds["trained_step"], "samples/s"),
            "rollout + update samples/s (Fast)": figure(batch / seconds["iteration_fast"], "samples/s"),
            f"Fast ({window} of {steps} steps) speed-up per iteration": figure(
                seconds["iteration_full"] / seconds["iteration_fast"], "x", note="rollout + update; no decode/reward"
            ),
            "  the same, predicted from forward and step times": figure(predicted, "x"),
        },
    }
