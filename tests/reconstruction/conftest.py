"""A tiny random Depth Anything 3 (the package's real classes, narrow heads) saved once per session in the hub layout,
and a tiny random ResNet for the perceptual distance."""

import pytest
import torch

from tests.rewards.tiny_models import save_tiny_resnet

TINY_RES = 42  # the frames' long side as the tiny model sees them: 3 patches of 14


@pytest.fixture(scope="session")
def tiny_da3(tmp_path_factory) -> str:
    pytest.importorskip(
        "depth_anything_3", reason="needs the depth-anything-3 package (see world_r1.reconstruction.da3)"
    )
    from world_r1.reconstruction.da3 import TINY_CONFIG, DepthAnything3

    torch.manual_seed(0)
    return str(DepthAnything3(TINY_CONFIG, process_res=TINY_RES).save_pretrained(tmp_path_factory.mktemp("tiny-da3")))


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory) -> str:
    return str(save_tiny_resnet(tmp_path_factory.mktemp("tiny-resnet")))
