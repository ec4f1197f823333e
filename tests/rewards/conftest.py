"""Shared inputs: tiny random models for the learned reward terms, rendered scenes for the geometric ones."""

import pytest
import torch

from tests.rewards.tiny_models import (
    save_tiny_clip,
    save_tiny_depth_anything,
    save_tiny_qwen_vl,
    save_tiny_resnet,
    save_tiny_vit,
)
from world_r1.synthetic import morph, rigid_video, unrelated_frames


@pytest.fixture(scope="session")
def tiny_depth_anything(tmp_path_factory) -> str:
    return str(save_tiny_depth_anything(tmp_path_factory.mktemp("tiny-depth-anything")))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    return str(save_tiny_clip(tmp_path_factory.mktemp("tiny-clip")))


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory) -> str:
    return str(save_tiny_resnet(tmp_path_factory.mktemp("tiny-resnet")))


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory) -> str:
    return str(save_tiny_vit(tmp_path_factory.mktemp("tiny-vit")))


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> str:
    """A tiny Qwen2.5-VL that answers "7" to everything."""
    return str(save_tiny_qwen_vl(tmp_path_factory.mktemp("tiny-vlm"), answer="7"))


@pytest.fixture(scope="session")
def tiny_vlm_junk(tmp_path_factory) -> str:
    """A tiny Qwen2.5-VL whose answers hold no number."""
    return str(save_tiny_qwen_vl(tmp_path_factory.mktemp("tiny-vlm-junk"), answer="x"))


SIZE, FRAMES = 128, 12
AMPLITUDES = (0, 2, 4, 8)


@pytest.fixture(scope="session", params=[0, 1, 2], ids=lambda s: f"seed{s}")
def scene_batch(request) -> torch.Tensor:
    """(6, 12, 3, 128, 128): a rigid scene morphed by each of AMPLITUDES pixels, unrelated frames, a static camera.

    One tensor per seed for the whole session, so the epipolar and depth tests share its (cached) feature analysis.
    """
    seed = request.param
    rigid = rigid_video(FRAMES, SIZE, SIZE, seed=seed).video
    static = rigid_video(FRAMES, SIZE, SIZE, seed=seed, static=True).video
    morphed = [morph(rigid, a, seed=seed) for a in AMPLITUDES]
    return torch.stack([*morphed, unrelated_frames(FRAMES, SIZE, SIZE, seed), static])


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tmp_path_factory) -> str:
    """A tiny random Qwen3-VL with the released image processor settings."""
    from tests.rewards.tiny_models import save_tiny_qwen3_vl

    return str(save_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-qwen3-vl")))


@pytest.fixture(scope="session")
def tiny_qwen3_vl_seven(tmp_path_factory) -> str:
    """A tiny Qwen3-VL whose digit logits are 12 on '7' and 0 on the other digits (and every other token)."""
    from tests.rewards.tiny_models import save_tiny_qwen3_vl

    logits = [12.0 if digit == 7 else 0.0 for digit in range(10)]
    return str(save_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-qwen3-vl-seven"), digit_logits=logits))
