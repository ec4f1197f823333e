"""LoRA-only training, the reference switch, batched CFG, prompt caching, decoding and the noise schedule."""

import pytest
import torch
from diffusers import WanPipeline

from tests.helpers import SPEC, latents, randomize_lora
from world_r1.policy import WanPolicy, flow_sigmas, load_wan_pipeline


def test_only_lora_parameters_train(policy: WanPolicy):
    randomize_lora(policy)  # with the zero-initialised B, lora_A would get no gradient
    x = latents()
    embeds = policy.encode_prompts(["a", "b"])
    policy.velocity(x, 0.5, embeds, policy.encode_negative(2), 5.0).square().mean().backward()
    lora = {id(p) for p in policy.lora_parameters()}
    assert lora and all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.lora_parameters())
    for module in (policy.transformer, policy.vae, policy.text_encoder):
        for name, param in module.named_parameters():
            if id(param) in lora:
                assert "lora_" in name
                continue
            assert not param.requires_grad, name
            assert param.grad is None, name


def test_lora_parameters_are_fp32_even_for_bf16_models(tiny_wan_dir):
    policy = WanPolicy.from_pretrained(tiny_wan_dir, dtype="bf16")
    assert policy.transformer.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in policy.lora_parameters())
    out = policy.velocity(latents(1), 0.5, policy.encode_prompts(["a"]), None, 1.0)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_reference_gives_exactly_the_base_model(policy: WanPolicy, tiny_wan_dir):
    randomize_lora(policy)
    base = load_wan_pipeline(tiny_wan_dir, torch.float32).transformer
    x, embeds = latents(), policy.encode_prompts(["a", "b"])
    timestep = torch.full((2,), 700.0)
    expected = base(hidden_states=x, timestep=timestep, encoder_hidden_states=embeds, return_dict=False)[0]
    with torch.no_grad(), policy.reference():
        reference = policy.velocity(x, 0.7, embeds)
    adapted = policy.velocity(x, 0.7, embeds).detach()
    assert torch.equal(reference, expected)
    assert not torch.allclose(adapted, expected, atol=1e-4)
    assert torch.equal(policy.velocity(x, 0.7, embeds).detach(), adapted), "adapter must be re-enabled"


def test_reference_re_enables_the_adapter_after_an_error(policy: WanPolicy):
    randomize_lora(policy)
    x, embeds = latents(1), policy.encode_prompts(["a"])
    before = policy.velocity(x, 0.5, embeds).detach()
    with pytest.raises(RuntimeError), policy.reference():
        raise RuntimeError("boom")
    assert torch.equal(policy.velocity(x, 0.5, embeds).detach(), before)


def test_cfg_batched_equals_two_forwards(policy: WanPolicy):
    randomize_lora(policy)
    x, embeds, negative = latents(), policy.encode_prompts(["a red barn", "a canyon"]), policy.encode_negative(2)
    sigma, scale = torch.tensor([0.9, 0.4]), 4.5
    with torch.no_grad():
        batched = policy.velocity(x, sigma, embeds, negative, scale)
        cond = policy.velocity(x, sigma, embeds)
        uncond = policy.velocity(x, sigma, negative)
    torch.testing.assert_close(batched, uncond + scale * (cond - uncond), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched, cond, atol=1e-4)


def test_prompt_cache_matches_the_pipeline_and_encodes_once(policy: WanPolicy, tiny_wan_dir):
    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    prompts = ["Camera pan left. A red barn.", "Camera fixed. A quiet library.", "Camera pan left. A red barn."]
    expected, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, max_sequence_length=512)
    calls = []
    encode = policy.prompt_cache._encode
    policy.prompt_cache._encode = lambda batch: calls.append(list(batch)) or encode(batch)
    cached = policy.encode_prompts(prompts)
    policy.encode_prompts(prompts[:2])
    assert calls == [prompts[:2]], "each distinct prompt is encoded once"
    torch.testing.assert_close(cached, expected.float())


def test_offloaded_text_encoder_still_serves_cached_prompts(policy: WanPolicy):
    policy.offload_text_encoder(["a", "b"])
    policy.text_encoder = None  # any further encoding would fail
    assert policy.encode_prompts(["b", "a"]).shape == (2, 512, 32)
    assert policy.encode_negative(3).shape == (3, 512, 32)


def test_decode_gives_videos_in_unit_range(policy: WanPolicy):
    video = policy.decode(latents())
    assert video.shape == (2, SPEC.num_frames, 3, SPEC.height, SPEC.width)
    assert video.dtype == torch.float32 and video.min() >= 0 and video.max() <= 1
    assert video.std() > 0


def test_flow_sigmas_shifted_schedule():
    sigmas = flow_sigmas(10, shift=3.0)
    assert sigmas.shape == (11,) and sigmas[0] == 1 and sigmas[-1] == 0
    assert torch.all(sigmas[1:] < sigmas[:-1])
    plain = torch.linspace(1, 0, 11)
    torch.testing.assert_close(sigmas, 3 * plain / (1 + 2 * plain))


def test_train_mode_reaches_only_the_transformer(policy: WanPolicy):
    policy.eval()
    before = policy.prompt_cache._encode(["Camera pan left. A red barn."])
    policy.train()
    assert policy.transformer.training
    assert not any(m.training for m in policy.text_encoder.modules()), "UMT5's dropout would corrupt the embeddings"
    assert not any(m.training for m in policy.vae.modules())
    torch.testing.assert_close(policy.prompt_cache._encode(["Camera pan left. A red barn."]), before)
