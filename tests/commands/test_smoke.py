"""`smoke`: Wan 2.1's real VAE and text width with a transformer of any size, trained, exported and reloaded."""

import pytest
import torch
from diffusers.models import WanTransformer3DModel

from world_r1.commands import smoke as smoke_command
from world_r1.policy import LoRAConfig
from world_r1.policy.lora import add_lora
from world_r1.settings import cpu_has_bf16_instructions

pytestmark = pytest.mark.slow  # subprocess runs, notebooks, whole-pipeline fits: `make test-fast` skips them

SMALL = {"num_attention_heads": 2, "attention_head_dim": 32, "ffn_dim": 64, "num_layers": 2}


def _check(figures: dict[str, float], lora_params: float) -> None:
    assert figures["LoRA parameters (M)"] == pytest.approx(lora_params)
    assert figures["LoRA B matrices trained away from zero"] == 1.0, "the reward moves: every adapter trains"
    lora_effect = figures["velocity: policy vs base model, the LoRA's effect (relative)"]
    assert lora_effect > 0 and figures["velocity: policy vs plain diffusers + LoRA (relative)"] <= 0.1 * lora_effect
    # LoRA, its two AdamW moments and its EMA, all fp32, are most of the checkpoint
    assert 4 * 4 * lora_params <= figures["checkpoint (MB)"] <= 1.3 * 4 * 4 * lora_params + 0.2
    assert figures["first step seconds"] > 0 and figures["peak memory (GB)"] > 0


def test_smoke_trains_exports_and_reloads_in_plain_diffusers(monkeypatch, tmp_path):
    monkeypatch.setitem(smoke_command.TRANSFORMERS, "1.3b", SMALL)
    figures = smoke_command.smoke(height=32, width=32, num_frames=5, rank=4, workdir=str(tmp_path), device="cpu")
    _check(figures, lora_params=2 * 8 * 2 * 4 * 64 / 1e6)  # 2 blocks x 8 projections x (A + B) x rank x width
    assert not any(tmp_path.iterdir()), "the scratch folder is removed"


def test_unknown_size_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        smoke_command.build_realsize_wan(tmp_path, size="7b")
    with pytest.raises(ValueError, match="choose one of"):
        smoke_command.smoke(workdir=str(tmp_path), device="cpu", dtype="int8")


def test_bf16_only_where_the_cpu_multiplies_it():
    """The real-size run picks bf16 on a CPU only with bf16 instructions: emulated, it is 66x slower than fp32."""
    assert cpu_has_bf16_instructions("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_bf16_instructions("Features\t: fp asimd sve bf16 i8mm\n")  # Arm
    assert not cpu_has_bf16_instructions("flags\t\t: fpu sse2 avx2 fma\nmodel name\t: a bf16 lookalike\n")
    assert not cpu_has_bf16_instructions("")


def test_realsize_shapes_on_the_meta_device():
    """The real-size run's transformer and LoRA, counted without its minutes: Wan 2.1 1.3B and the smoke run's rank-32
    adapter built on the meta device (shapes, no memory)."""
    with torch.device("meta"):
        transformer = WanTransformer3DModel(**smoke_command.TRANSFORMERS["1.3b"])
    add_lora(transformer, LoRAConfig(rank=32, alpha=64.0))
    named = dict(transformer.named_parameters())
    assert sum(p.numel() for n, p in named.items() if "lora_" not in n) / 1e9 == pytest.approx(1.419, abs=1e-3)
    assert sum(p.numel() for n, p in named.items() if "lora_" in n) / 1e6 == pytest.approx(23.59296)


@pytest.mark.realsize
def test_realsize_wan_1_3b(tmp_path):  # `pytest -m realsize` (4 minutes on 2 cores); `make test` leaves it out
    figures = smoke_command.smoke(workdir=str(tmp_path), device="cpu")
    assert figures["transformer parameters (B)"] == pytest.approx(1.419, abs=1e-3)
    _check(figures, lora_params=23.59296)
