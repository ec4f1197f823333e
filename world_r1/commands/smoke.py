"""`python -m world_r1 smoke`: the real-size Wan 2.1 architecture with random weights, end to end, before renting GPUs.

It builds the 1.3B (or 14B) transformer and the real VAE with random weights offline, saves them with
``save_pretrained``, loads them back through the same code as a hub model, runs Flow-GRPO steps with a reward that
moves (so every gradient is non-zero), writes a checkpoint and the LoRA, reloads the LoRA into plain diffusers'
``WanPipeline`` and checks that it predicts what the policy predicts. It prints the step time, the peak memory and the
true sizes of the files a run writes.

The text encoder is a one-layer stand-in with UMT5-XXL's width (4096) and a byte-level tokenizer: the real one has
24 layers (11 GB in bf16) and a 256k-token vocabulary that cannot be built offline. Nothing else differs from Wan.
"""

from __future__ import annotations

import contextlib
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel
from rich.console import Console
from rich.table import Table
from transformers import UMT5Config, UMT5EncoderModel

from world_r1.callbacks.ema import LoRAEMA
from world_r1.data import PromptDataModule
from world_r1.grpo import GRPOConfig, SamplingConfig
from world_r1.module import WorldR1
from world_r1.policy import WAN_NEGATIVE_PROMPT, LoRAConfig, PolicyConfig, VideoSpec, resolve_dtype
from world_r1.policy.schedule import wan_unipc_scheduler
from world_r1.policy.tiny import build_tokenizer
from world_r1.settings import cpu_has_bf16_instructions

#: The transformer of each Wan 2.1 text-to-video size (the rest of diffusers' defaults is shared by both).
TRANSFORMERS: dict[str, dict[str, int]] = {
    "1.3b": {"num_attention_heads": 12, "ffn_dim": 8960, "num_layers": 30},
    "14b": {"num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40},
}
#: The README's estimated peak GPU memory (GB) of one process at 832x480x81, micro-batch 1, UMT5 offloaded, less
#: R_gen's PickScore (2 GB), which the smoke run does not load.
ESTIMATED_PEAK_GB: dict[str, float] = {"1.3b": 19.0}
REAL_VIDEO = VideoSpec(480, 832, 81)
SMOKE_PROMPTS = ("Camera pan left. A red barn in a wheat field.", "Camera truck right. A stone bridge over a river.")


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create parameters directly in ``dtype``: a 14B model is never materialised in fp32 first."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_realsize_wan(out_dir: str | Path, size: str = "1.3b", dtype: str = "bf16", seed: int = 0) -> Path:
    """Write Wan 2.1 ``size`` with random weights in ``dtype`` (VAE fp32) to ``out_dir`` with ``save_pretrained``."""
    if size not in TRANSFORMERS:
        raise ValueError(f"size must be one of {sorted(TRANSFORMERS)}, got {size!r}.")
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    with default_dtype(resolve_dtype(dtype)):
        transformer = WanTransformer3DModel(**TRANSFORMERS[size])  # diffusers' defaults are Wan 2.1's
        text_encoder = UMT5EncoderModel(  # UMT5-XXL's width and heads, one layer instead of 24
            UMT5Config(
                vocab_size=len(tokenizer),
                d_model=4096,
                d_kv=64,
                d_ff=10240,
                num_layers=1,
                num_heads=64,
                feed_forward_proj="gated-gelu",
                pad_token_id=0,
                eos_token_id=1,
            )
        )
    vae = AutoencoderKLWan()  # Wan 2.1's VAE config, with its latent statistics
    scheduler = wan_unipc_scheduler(flow_shift=3.0)
    pipe = WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.save_pretrained(out_dir)
    return Path(out_dir)


class StepClock(L.Callback):
    """Seconds of every training step (rollout, reward, update)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated on ``device``, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports KiB


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def _run(
    model_dir: Path,
    work: Path,
    video: VideoSpec,
    steps: int,
    rank: int,
    device: str,
    dtype: str,
) -> tuple[WorldR1, StepClock, L.Trainer]:
    module = WorldR1(
        policy=PolicyConfig(
            model=str(model_dir),
            dtype=dtype,
            lora=LoRAConfig(rank=rank, alpha=2.0 * rank),
            negative_prompt=WAN_NEGATIVE_PROMPT,
            gradient_checkpointing=True,
        ),
        video=video,
        sampling=SamplingConfig(train_steps=4, eval_steps=4, sde_window=2, sde_window_max_start=2),
        grpo=GRPOConfig(micro_batch_size=1, lr=1e-3),  # the brightness reward moves: every gradient is non-zero
    )
    prompts = work / "prompts.txt"
    prompts.write_text("\n".join(SMOKE_PROMPTS) + "\n", encoding="utf-8")
    data = PromptDataModule(
        str(prompts), decoupled_prompts=None, eval_prompts=str(prompts), group_size=2, prompts_per_step=1
    )
    clock = StepClock()
    trainer = L.Trainer(
        accelerator=device,
        devices=1,
        max_steps=steps,
        precision="32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=work,
        callbacks=[clock, LoRAEMA(decay=0.9, update_every=1)],
    )
    trainer.fit(module, data)
    return module, clock, trainer


@torch.no_grad()
def _diffusers_agreement(module: WorldR1, model_dir: Path, lora: Path, dtype: str) -> tuple[float, float]:
    """How far plain diffusers' velocity (``WanPipeline`` in the run's ``dtype`` with the exported LoRA from
    ``load_lora_weights``) is from the policy's, and how far the policy's is from the base model's, each as the largest
    difference relative to the largest value, on one random input: the first must be far below the second."""
    policy = module.policy
    weights = resolve_dtype(dtype)
    pipe = WanPipeline.from_pretrained(model_dir, dtype=weights)
    pipe.load_lora_weights(str(lora))
    transformer = pipe.transformer.to(policy.device)
    x = module.sampler.starting_noise([0]).noise  # the noise a rollout of seed 0 starts from
    embeds = policy.encode_prompts([SMOKE_PROMPTS[0]])
    ours = policy.velocity(x, 0.5, embeds)
    with policy.reference():
        base = policy.velocity(x, 0.5, embeds)
    mixed = weights != torch.float32
    with torch.autocast(policy.device.type, dtype=weights) if mixed else contextlib.nullcontext():
        theirs = transformer(
            hidden_states=x.to(weights),
            timestep=torch.tensor([500.0], device=policy.device),
            encoder_hidden_states=embeds.to(weights),
            return_dict=False,
        )[0].float()
    del pipe, transformer
    scale = float(ours.abs().max())
    return float((ours - theirs).abs().max()) / scale, float((ours - base).abs().max()) / scale


def smoke(
    size: str = "1.3b",
    height: int = 64,
    width: int = 64,
    num_frames: int = 9,
    steps: int = 2,
    rank: int = 32,
    workdir: str | None = None,
    device: str = "cuda" if torch.cuda.is_available() else "cpu",
    dtype: str | None = None,
) -> dict[str, float]:
    """Run World-R1 on the real-size Wan 2.1 architecture with random weights and report time, memory and sizes.

    Args:
        size: 1.3b or 14b (the 14B needs about 30 GB of memory in bf16 for its weights alone).
        height: video height in pixels (multiple of 16); 480 for the real size.
        width: video width in pixels (multiple of 16); 832 for the real size.
        num_frames: frames, 4k+1; 81 for the real size.
        steps: Flow-GRPO steps (each: 2 rollouts of one prompt, reward, update).
        rank: LoRA rank (the configs use 32).
        workdir: where the random model, checkpoint and LoRA go (default: a temporary folder, removed after).
        device: where to run (cuda when there is a GPU).
        dtype: the transformer's weights, bf16, fp16 or fp32 (default: bf16 on a GPU or on a CPU with bf16
            instructions; fp32 on other CPUs, where emulated bf16 matrix products are tens of times slower).
    """
    if dtype is None:
        dtype = "bf16" if device.startswith("cuda") or cpu_has_bf16_instructions() else "fp32"
    resolve_dtype(dtype)  # a bad name fails here, naming the choices
    console = Console()
    video = VideoSpec(height, width, num_frames)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        work = Path(scratch)
        began = time.perf_counter()
        console.print(f"[bold]building Wan 2.1 {size}[/] with random weights in {work}")
        model_dir = build_realsize_wan(work / "wan", size)
        built = time.perf_counter() - began
        module, clock, trainer = _run(model_dir, work, video, steps, rank, device, dtype)
        peak = peak_memory_gb(module.policy.device)
        trainer.save_checkpoint(work / "smoke.ckpt")
        lora = module.policy.save_lora(work / "lora")
        named = list(module.policy.transformer.named_parameters())
        base_parameters = sum(p.numel() for n, p in named if "lora_" not in n)
        moved = sum(int(p.abs().max() > 0) for n, p in named if "lora_B" in n)
        matrices = sum(1 for n, _ in named if "lora_B" in n)
        figures = {
            "transformer parameters (B)": base_parameters / 1e9,
            "LoRA parameters (M)": sum(p.numel() for p in module.policy.lora_parameters()) / 1e6,
            "LoRA B matrices trained away from zero": moved / matrices,
            "build + save seconds": built,
            "first step seconds": clock.seconds[0],
            "later step seconds": sum(clock.seconds[1:]) / max(1, len(clock.seconds) - 1),
            "peak memory (GB)": peak,
            "checkpoint (MB)": _size_mb(work / "smoke.ckpt"),
            "LoRA file (MB)": _size_mb(lora),
            "model folder (MB)": _size_mb(model_dir),
        }
        if module.policy.device.type == "cuda" and video == REAL_VIDEO and size in ESTIMATED_PEAK_GB:
            figures["README's estimated peak (GB)"] = ESTIMATED_PEAK_GB[size]
        agreement, lora_effect = _diffusers_agreement(module, model_dir, lora, dtype)
        figures["velocity: policy vs plain diffusers + LoRA (relative)"] = agreement
        figures["velocity: policy vs base model, the LoRA's effect (relative)"] = lora_effect
    table = Table(title=f"world-r1 smoke: Wan 2.1 {size} at {width}x{height}x{num_frames} on {device} in {dtype}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:.4g}")
    console.print(table)
    return figures
