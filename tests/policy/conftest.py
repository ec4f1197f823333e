"""A tiny Wan written once per test session and a fresh policy per test."""

import pytest
import torch

from world_r1.policy import LoRAConfig, VideoSpec, WanPolicy, build_tiny_wan

SPEC = VideoSpec(height=32, width=32, num_frames=5)


@pytest.fixture(scope="session")
def tiny_wan_dir(tmp_path_factory) -> str:
    return str(build_tiny_wan(tmp_path_factory.mktemp("tiny-wan")))


@pytest.fixture()
def policy(tiny_wan_dir) -> WanPolicy:
    return WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(rank=4, alpha=8.0))


def randomize_lora(policy: WanPolicy, seed: int = 0, scale: float = 0.5) -> None:
    """LoRA B starts at zero (a no-op adapter); give every adapter weight a random value so it changes outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.lora_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * scale)


def latents(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, *SPEC.latent_shape(), generator=torch.Generator().manual_seed(seed))
