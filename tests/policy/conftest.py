import pytest

from world_r1.policy import LoRAConfig, WanPolicy


@pytest.fixture()
def policy(tiny_wan_dir) -> WanPolicy:
    return WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(rank=4, alpha=8.0))
