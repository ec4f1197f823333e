"""Plain, YAML-friendly settings of the policy: which Wan to load and run, how to adapt it, which videos to make."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from world_r1.settings import Dtype, check_choice

LoRAInit = Literal["default", "gaussian"]
DEFAULT_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

#: Self- and cross-attention projections of every Wan block: the LoRA placement of Flow-GRPO and World-R1.
ATTENTION_PROJECTIONS: tuple[str, ...] = (
    "attn1.to_q",
    "attn1.to_k",
    "attn1.to_v",
    "attn1.to_out.0",
    "attn2.to_q",
    "attn2.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
)

#: The denoising transformers a Wan may have: every Wan has ``transformer``; Wan 2.2 A14B adds ``transformer_2``, its
#: low-noise expert.
EXPERTS: tuple[str, ...] = ("transformer", "transformer_2")

#: Wan 2.1's standard negative prompt (``sample_neg_prompt`` of its ``wan/configs/shared_config.py``), the
#: unconditional branch of classifier-free guidance in Wan's own examples. The real-Wan configs use it.
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，"
    "杂乱的背景，三条腿，背景人很多，倒着走"
)


@dataclass
class LoRAConfig:
    """Low-rank adapter on the transformer; everything else stays frozen."""

    rank: int = 32
    """Adapter rank r."""
    alpha: float = 64.0
    """Scaling numerator: the update is (alpha / r) * B @ A."""
    dropout: float = 0.0
    """Dropout on the adapter input."""
    target_modules: list[str] = field(default_factory=lambda: list(ATTENTION_PROJECTIONS))
    """Module-name suffixes."""
    experts: list[str] = field(default_factory=lambda: list(EXPERTS))
    """Which transformers get it (those the Wan has)."""
    init: LoRAInit = "default"
    """A's initialisation (B starts at 0): default (PEFT's Kaiming) or gaussian (the release)."""

    def __post_init__(self) -> None:
        check_choice("lora.init", self.init, LoRAInit)
        if self.rank < 1:
            raise ValueError(f"lora.rank must be >= 1, got {self.rank}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}.")
        if not self.target_modules:
            raise ValueError("lora.target_modules is empty: name at least one module, e.g. 'attn1.to_q'.")


@dataclass
class VideoSpec:
    """Size of the generated videos. Wan's VAE needs frames = 4k + 1 and sides divisible by 16 (8x VAE, 2x patch)."""

    height: int = 480
    """Pixels, multiple of 16."""
    width: int = 832
    """Pixels, multiple of 16."""
    num_frames: int = 81
    """4k + 1 frames (81 = 5 s at 16 fps)."""
    fps: int = 16
    """Frame rate written into saved videos."""

    def __post_init__(self) -> None:
        if self.num_frames < 1 or (self.num_frames - 1) % 4 != 0:
            fix = 4 * max(0, round((self.num_frames - 1) / 4)) + 1
            raise ValueError(
                f"video.num_frames={self.num_frames} is not of the form 4k+1 that Wan's VAE needs; use e.g. {fix}."
            )
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 16 or value % 16 != 0:
                fix = max(16, round(value / 16) * 16)
                raise ValueError(f"video.{name}={value} is not a positive multiple of 16; use e.g. {fix}.")

    def latent_shape(self, channels: int = 16, temporal: int = 4, spatial: int = 8) -> tuple[int, int, int, int]:
        """(C, T, h, w) of one latent video under the VAE's compression (Wan 2.1: 4x temporal, 8x spatial)."""
        return channels, (self.num_frames - 1) // temporal + 1, self.height // spatial, self.width // spatial


@dataclass
class PolicyConfig:
    """Which Wan to load and how to run it."""

    model: str = DEFAULT_MODEL
    """Hub id or local diffusers directory."""
    dtype: Dtype = "bf16"
    """Transformer/text-encoder weights: bf16, fp16 or fp32 (LoRA weights are always fp32)."""
    compute_dtype: Dtype | None = None
    """Transformer autocast dtype (None: as dtype); FSDP: fp32 dtype + bf16 here."""
    vae_dtype: Dtype | None = None
    """VAE weights and decode (None: fp32 whenever dtype is bf16/fp16, as diffusers' Wan)."""
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """The trainable adapter."""
    max_sequence_length: int = 512
    """Text tokens the transformer attends to (Wan pads prompts to 512)."""
    negative_prompt: str = ""
    """The unconditional branch of classifier-free guidance."""
    gradient_checkpointing: bool = False
    """Recompute transformer blocks in backward: less memory, ~30% slower."""
    offload_text_encoder: bool = False
    """Encode every prompt once at fit start, then keep UMT5 (11 GB) on the CPU."""
    vae_tiling: bool = False
    """Decode in spatial tiles: needed for 832x480x81 on smaller GPUs."""
    decode_batch_size: int = 1
    """Videos decoded at once."""
    build_tiny_if_missing: bool = False
    """Write a tiny random Wan at `model` first if nothing is there (demo)."""
