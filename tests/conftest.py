"""Test-wide settings: offline, CPU, caches in a temporary folder, deterministic torch."""

import os
import tempfile

_cache = tempfile.mkdtemp(prefix="world_r1_test_cache_")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_cache, "hf")
os.environ["TORCH_HOME"] = os.path.join(_cache, "torch")
os.environ["XDG_CACHE_HOME"] = os.path.join(_cache, "xdg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

import pytest  # noqa: E402

from world_r1.policy import build_tiny_wan  # noqa: E402


@pytest.fixture(scope="session")
def tiny_wan_dir(tmp_path_factory) -> str:
    """A tiny random Wan written once per session with save_pretrained, loaded by tests through from_pretrained."""
    return str(build_tiny_wan(tmp_path_factory.mktemp("tiny-wan")))


@pytest.fixture(scope="session")
def tiny_variant_dir(tmp_path_factory):
    """``tiny_variant_dir(variant)``: the tiny random Wan of ``variant`` (``world_r1.policy.tiny.TINY_VARIANTS``),
    written once per session with save_pretrained."""
    built: dict[str, str] = {}

    def build(variant: str) -> str:
        if variant not in built:
            built[variant] = str(build_tiny_wan(tmp_path_factory.mktemp(variant), variant=variant))
        return built[variant]

    return build
