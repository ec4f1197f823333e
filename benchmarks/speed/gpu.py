"""Benchmark 5 (CUDA only): a Wan2.1-T2V-1.3B-sized random transformer in bf16 at 832x480x81.

Seconds per rollout and per trained step, peak memory, and model FLOP utilisation (MFU) against the dense bf16 peak
of an H100/H200 (989 TFLOPS). FLOPs are counted from the architecture (matmuls and attention, 2 FLOPs per
multiply-add); a LoRA-only backward computes activation gradients but no base-weight gradients, so it is counted as
one forward of the linear layers plus two of the attention cores, and checkpointing recompute is not counted
(MFU counts model FLOPs, not hardware FLOPs). The same code runs on CPU at tiny sizes in the smoke test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.common import ModelSize, build_bench_policy, median_seconds
from benchmarks.report import figure
from benchmarks.speed.rollout import rollout_functions
from benchmarks.speed.training import training_functions
from world_r1.policy import LoRAConfig, VideoSpec

WAN_1_3B = ModelSize(layers=30, heads=12, head_dim=128, ffn_dim=8960, text_dim=4096, text_tokens=512)
WAN_480P_81 = VideoSpec(height=480, width=832, num_frames=81)
H100_BF16_DENSE_FLOPS = 989e12  # H100 SXM and H200: dense bf16 tensor-core peak


@dataclass(frozen=True)
class ForwardFlops:
    """FLOPs of one forward of one sample, split so the backward can be counted properly."""

    linear: float  # projections, FFN, patch embedding, output head, text embedding
    attention: float  # the QK^T and AV products of self- and cross-attention

    @property
    def total(self) -> float:
        return self.linear + self.attention


def forward_flops(size: ModelSize, tokens: int, patch_volume: int = 1 * 2 * 2, channels: int = 16) -> ForwardFlops:
    """Matmul FLOPs of one Wan transformer forward on ``tokens`` video tokens and ``size.text_tokens`` text tokens."""
    n, d, f, text = tokens, size.dim, size.ffn_dim, size.text_tokens
    per_layer_linear = (
        8 * n * d * d + 4 * n * d * d + 4 * text * d * d + 4 * n * d * f
    )  # self qkvo, cross q/o, k/v, ffn
    per_layer_attention = 4 * n * n * d + 4 * n * text * d
    head = 2 * n * d * channels * patch_volume * 2  # patch embedding in, projection out
    text_embedding = 2 * text * size.text_dim * d + 2 * text * d * d
    return ForwardFlops(size.layers * per_layer_linear + head + text_embedding, size.layers * per_layer_attention)


def run(
    device: str = "cuda",
    size: ModelSize = WAN_1_3B,
    spec: VideoSpec = WAN_480P_81,
    steps: int = 10,
    dtype: torch.dtype = torch.bfloat16,
    repeats: int = 2,
    peak_flops: float | None = H100_BF16_DENSE_FLOPS,
) -> dict:
    """Seconds per rollout (ours and diffusers) and per trained step (batch 1, CFG), peak memory, MFU."""
    cuda = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    policy, pipeline = build_bench_policy(size, lora=LoRAConfig(), dtype=dtype, device=device)
    policy.to(device)
    _, t, h, w = spec.latent_shape()
    tokens = t * (h // 2) * (w // 2)
    flops = forward_flops(size, tokens)
    seconds: dict[str, float] = {}
    memory_gib: dict[str, float] = {}

    def measure(name: str, fn: Callable[[], object]) -> None:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            seconds[name] = median_seconds(fn, repeats, warmup=1, sync=sync)
        except torch.OutOfMemoryError:
            seconds[name] = float("nan")
        if cuda:
            memory_gib[name] = torch.cuda.max_memory_allocated() / 2**30

    rollout = rollout_functions(policy, pipeline, spec, 1, steps, text_tokens=size.text_tokens)
    measure("rollout", rollout["ours"])
    measure("rollout_diffusers", rollout["diffusers"])
    training = training_functions(policy, spec, 1, steps, 2, size.text_tokens)
    measure("trained_step_checkpointed", training["trained_step_checkpointed"])
    measure("trained_step", training["trained_step"])  # may not fit without checkpointing: NaN then

    cfg = 2  # classifier-free guidance: conditional + unconditional sample per forward
    rollout_flops = steps * cfg * flops.total
    train_flops = cfg * (flops.total + (flops.linear + 2 * flops.attention) + flops.total)  # fwd + bwd + reference

    def mfu(model_flops: float, name: str) -> float | None:
        return model_flops / seconds[name] / peak_flops if peak_flops and math.isfinite(seconds[name]) else None

    best_step = "trained_step" if math.isfinite(seconds["trained_step"]) else "trained_step_checkpointed"
    rollout_ratio = seconds["rollout"] / seconds["rollout_diffusers"]
    return {
        "config": {
            "device": torch.cuda.get_device_name(0) if cuda else device,
            "model": size.__dict__,
            "video": spec.__dict__,
            "dtype": str(dtype),
            "tokens": tokens,
            "steps": steps,
            "repeats": repeats,
            "peak_flops": peak_flops,
            "forward_tflops_per_sample": flops.total / 1e12,
        },
        "seconds": seconds,
        "peak_memory_gib": memory_gib,
        "figures": {
            f"rollout seconds ({steps} steps, CFG)": figure(seconds["rollout"], "s"),
            "rollout: ours / diffusers": figure(rollout_ratio, "x", goal="<= 1.05", met=rollout_ratio <= 1.05),
            "trained step seconds (grad. checkpointing)": figure(seconds["trained_step_checkpointed"], "s"),
            "trained step seconds (no checkpointing; NaN = OOM)": figure(seconds["trained_step"], "s"),
            "rollout MFU": figure(mfu(rollout_flops, "rollout"), "fraction"),
            "trained step MFU": figure(mfu(train_flops, best_step), "fraction"),
            "peak memory, rollout": figure(memory_gib.get("rollout"), "GiB"),
            "peak memory, trained step (checkpointed)": figure(memory_gib.get("trained_step_checkpointed"), "GiB"),
        },
    }
