"""What the speed benchmarks share: a noise-robust timer and the benchmark-sized Wan (the machine description and
every result's provenance live in :mod:`benchmarks.provenance`, re-exported here).

Timings on a shared CPU are noisy, so every figure the suite reports is a ratio of two medians measured in the same
process, interleaved, after a warm-up: the noise that hits one side hits the other too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import WanPipeline, WanTransformer3DModel

from benchmarks.provenance import cpu_model, git_state, machine, record
from world_r1.policy import LoRAConfig, VideoSpec, WanPolicy, build_tiny_pipeline


@dataclass(frozen=True)
class ModelSize:
    """Width of the random Wan transformer a benchmark runs (the real 1.3B is 30 x 12 heads x 128, ffn 8960)."""

    layers: int = 2
    heads: int = 4
    head_dim: int = 32
    ffn_dim: int = 512
    text_dim: int = 64
    text_tokens: int = 64  # prompt length the cross-attention sees (Wan pads to 512)

    @property
    def dim(self) -> int:
        return self.heads * self.head_dim


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, sync: Callable[[], None] | None = None):
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls (``sync`` e.g. CUDA sync)."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, timed round-robin so slow drifts of a shared machine hit all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def build_transformer(size: ModelSize, dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0):
    """A randomly initialised ``WanTransformer3DModel`` of ``size`` with the real model's patching and channels."""
    torch.manual_seed(seed)
    with torch.device(device):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=size.heads,
            attention_head_dim=size.head_dim,
            in_channels=16,
            out_channels=16,
            text_dim=size.text_dim,
            freq_dim=256,
            ffn_dim=size.ffn_dim,
            num_layers=size.layers,
            rope_max_seq_len=1024,
        )
    return transformer.to(dtype).eval()


def build_bench_pipeline(size: ModelSize, dtype: torch.dtype = torch.float32, device: str = "cpu") -> WanPipeline:
    """The tiny offline Wan (VAE, tokenizer, text encoder, scheduler) with a transformer of ``size`` in its place.

    The benchmarks feed prompt embeddings directly, so the text encoder is never run and its width does not matter.
    """
    pipeline = build_tiny_pipeline()
    pipeline.transformer = build_transformer(size, dtype, device)
    pipeline.register_modules(transformer=pipeline.transformer)
    return pipeline.to(device)


def build_bench_policy(size: ModelSize, lora: LoRAConfig | None = None, **kwargs) -> tuple[WanPolicy, WanPipeline]:
    """A :class:`WanPolicy` with LoRA on the benchmark transformer, and the diffusers pipeline sharing its modules."""
    pipeline = build_bench_pipeline(size, **kwargs)
    policy = WanPolicy(pipeline, lora or LoRAConfig(rank=8, alpha=16.0))
    return policy, pipeline


def prompt_embeds(
    batch: int, text_dim: int, text_tokens: int, seed: int = 0, device: str | torch.device = "cpu", dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (conditional, negative) prompt embeddings ``(batch, text_tokens, text_dim)``: encoding is not timed."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, text_tokens, text_dim)
    cond, neg = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    return cond.to(device, dtype), neg.to(device, dtype)


def initial_noise(spec: VideoSpec, batch: int, seed: int = 0, device: str | torch.device = "cpu") -> torch.Tensor:
    """Gaussian latents ``(batch, 16, T, h, w)`` of a ``spec`` video."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *spec.latent_shape(), generator=generator).to(device)


__all__ = ["cpu_model", "git_state", "machine", "record"]  # the machine description, shared by every result
