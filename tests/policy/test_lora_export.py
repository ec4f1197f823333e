"""The exported LoRA is a plain diffusers file: WanPipeline.load_lora_weights reads it and reproduces our outputs."""

import pytest
import torch
from diffusers import WanPipeline

from tests.helpers import latents, randomize_lora
from world_r1.policy import LoRAConfig, WanPolicy


def _forward(transformer, x, embeds):
    timestep = torch.full((x.shape[0],), 600.0)
    with torch.no_grad():
        return transformer(hidden_states=x, timestep=timestep, encoder_hidden_states=embeds, return_dict=False)[0]


def test_export_loads_in_plain_diffusers_and_changes_output(policy: WanPolicy, tiny_wan_dir, tmp_path):
    randomize_lora(policy)
    path = policy.save_lora(tmp_path / "lora")
    assert path.name == "pytorch_lora_weights.safetensors" and path.is_file()

    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    x, embeds = latents(), policy.encode_prompts(["a", "b"])
    before = _forward(pipe.transformer, x, embeds)
    pipe.load_lora_weights(str(tmp_path / "lora"))
    after = _forward(pipe.transformer, x, embeds)
    ours = policy.velocity(x, 0.6, embeds).detach()

    assert not torch.allclose(before, after, atol=1e-4), "loading the LoRA must change the output"
    torch.testing.assert_close(after, ours, rtol=1e-5, atol=1e-5)


def test_load_back_into_a_fresh_policy(policy: WanPolicy, tiny_wan_dir, tmp_path):
    randomize_lora(policy, seed=7)
    policy.save_lora(tmp_path)
    fresh = WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(rank=4, alpha=8.0))
    fresh.load_lora(tmp_path)
    for (name, a), b in zip(policy.lora_state_dict().items(), fresh.lora_state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    x, embeds = latents(1), policy.encode_prompts(["a"])
    torch.testing.assert_close(fresh.velocity(x, 0.3, embeds), policy.velocity(x, 0.3, embeds))


def test_loading_a_missing_or_mismatched_lora_fails_clearly(policy: WanPolicy, tiny_wan_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="save_lora"):
        policy.load_lora(tmp_path / "nothing.safetensors")
    other = WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(rank=2, target_modules=["ffn.net.2"]))
    other.save_lora(tmp_path / "other")
    with pytest.raises((ValueError, RuntimeError)):
        policy.load_lora(tmp_path / "other")
