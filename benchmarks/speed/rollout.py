"""Benchmark 1: our rollout (SDE window with log-probs, batched CFG) against plain ``WanPipeline.__call__``.

Both run the very same transformer object (with its LoRA adapter) from the same noise, with the same number of steps,
size and guidance, and the same integrator (diffusers' flow-matching Euler scheduler in the pipeline), and return
latents. What differs is what the issue asks to price: the SDE steps and their
log-probabilities, and the loop around the model. diffusers runs CFG as two forwards of B; we run one of 2B, so the
CFG forward is timed both ways too, to show how much of the ratio that choice explains.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

from benchmarks.common import ModelSize, build_bench_policy, initial_noise, interleaved_medians, prompt_embeds
from benchmarks.report import figure
from world_r1.grpo import SamplingConfig
from world_r1.grpo.rollout import sample_rollout
from world_r1.policy import VideoSpec, WanPolicy, flow_sigmas
from world_r1.policy.guidance import Guidance


def rollout_functions(
    policy: WanPolicy,
    pipeline: WanPipeline,
    spec: VideoSpec,
    batch: int,
    steps: int,
    guidance_scale: float = 5.0,
    text_tokens: int = 64,
) -> dict[str, Callable[[], object]]:
    """No-argument closures to time: ``ours``, ``diffusers`` (same LoRA model), ``diffusers_base`` (adapter off),
    and one CFG forward ``cfg_batched`` (2B at once, ours) vs ``cfg_split`` (two of B, diffusers')."""
    device = policy.device
    noise = initial_noise(spec, batch, device=device)
    text_dim = policy.transformer.config.text_dim
    cond, neg = prompt_embeds(batch, text_dim, text_tokens, device=device, dtype=policy.compute_dtype)
    window = min(2, steps)
    config = SamplingConfig(
        steps, guidance_scale=guidance_scale, sde_window=window, sde_window_max_start=steps - window
    )
    sigmas = flow_sigmas(steps, config.flow_shift)
    sde_steps = list(range(config.sde_window))
    # the same first-order integrator on both sides (WanPipeline's default UniPC costs more per step)
    pipeline.scheduler = FlowMatchEulerDiscreteScheduler(shift=config.flow_shift)
    pipeline.set_progress_bar_config(disable=True)

    @torch.no_grad()
    def ours() -> None:
        generator = torch.Generator(device).manual_seed(1)
        sample_rollout(policy, noise, Guidance(cond, neg, guidance_scale), sigmas, config, sde_steps, generator)

    def diffusers(adapter: bool = True) -> None:
        if not adapter:
            policy.transformer.disable_adapters()
        try:
            pipeline(
                prompt_embeds=cond,
                negative_prompt_embeds=neg,
                height=spec.height,
                width=spec.width,
                num_frames=spec.num_frames,
                num_inference_steps=steps,
                guidance_scale=guidance_scale,
                latents=noise.clone(),
                output_type="latent",
            )
        finally:
            policy.transformer.enable_adapters()

    @torch.no_grad()
    def cfg_split() -> None:
        for embeds in (cond, neg):
            policy.velocity(noise, 0.5, embeds, None, 1.0)

    return {
        "ours": ours,
        "diffusers": diffusers,
        "diffusers_base": lambda: diffusers(adapter=False),
        "cfg_batched": torch.no_grad()(lambda: policy.velocity(noise, 0.5, cond, neg, guidance_scale)),
        "cfg_split": cfg_split,
    }


def run(
    size: ModelSize | None = None,
    spec: VideoSpec | None = None,
    batch: int = 2,
    steps: int = 8,
    guidance_scale: float = 5.0,
    repeats: int = 7,
) -> dict:
    """Median seconds per rollout of ours and of diffusers; ``ratio`` = ours / diffusers (goal: <= 1.05)."""
    size = size or ModelSize()
    spec = spec or VideoSpec(height=128, width=128, num_frames=17)
    policy, pipeline = build_bench_policy(size)
    seconds = interleaved_medians(
        rollout_functions(policy, pipeline, spec, batch, steps, guidance_scale, size.text_tokens), repeats
    )
    ratio = seconds["ours"] / seconds["diffusers"]
    outside_model = 1 - steps * seconds["cfg_batched"] / seconds["ours"]  # SDE maths, log-probs, recording, loop
    return {
        "config": {
            "model": size.__dict__,
            "video": spec.__dict__,
            "batch": batch,
            "steps": steps,
            "sde_window": min(2, steps),
            "guidance_scale": guidance_scale,
            "repeats": repeats,
        },
        "seconds": seconds,
        "figures": {
            "rollout: ours / diffusers (same LoRA model)": figure(ratio, "x", goal="<= 1.05", met=ratio <= 1.05),
            "diffusers: with LoRA / without": figure(seconds["diffusers"] / seconds["diffusers_base"], "x"),
            "CFG forward: one of 2B / two of B": figure(seconds["cfg_batched"] / seconds["cfg_split"], "x"),
            "our rollout's share outside the transformer": figure(outside_model, "fraction", note="noisy near 0"),
            "rollout seconds (ours)": figure(seconds["ours"], "s"),
            "rollout seconds (diffusers)": figure(seconds["diffusers"], "s"),
        },
    }
