"""Wan 2.1 as a policy: loading (hub id or local path), LoRA, prompt-embedding cache, the tiny offline model."""

from world_r1.policy.config import (
    ATTENTION_PROJECTIONS,
    DEFAULT_MODEL,
    WAN_NEGATIVE_PROMPT,
    LoRAConfig,
    PolicyConfig,
    VideoSpec,
)
from world_r1.policy.loading import load_wan_pipeline, resolve_model_source
from world_r1.policy.schedule import flow_sigmas, shift_sigmas
from world_r1.policy.tiny import WanSizes, build_tiny_pipeline, build_tiny_wan
from world_r1.policy.wan import WanPolicy
from world_r1.settings import resolve_dtype

__all__ = [
    "ATTENTION_PROJECTIONS",
    "DEFAULT_MODEL",
    "WAN_NEGATIVE_PROMPT",
    "LoRAConfig",
    "PolicyConfig",
    "VideoSpec",
    "WanPolicy",
    "WanSizes",
    "build_tiny_pipeline",
    "build_tiny_wan",
    "flow_sigmas",
    "load_wan_pipeline",
    "resolve_dtype",
    "resolve_model_source",
    "shift_sigmas",
]
