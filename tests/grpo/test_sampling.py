"""Evaluation sampling: UniPC reproduces WanPipeline's default sampler, and each sampler is chosen by the config."""

import pytest
import torch
from diffusers import WanPipeline

from tests.helpers import SPEC, latents
from world_r1.grpo import SamplingConfig
from world_r1.grpo.rollout import sample_ode, sample_unipc
from world_r1.policy import LoRAConfig, WanPolicy, flow_sigmas
from world_r1.policy.guidance import Guidance


@pytest.fixture()
def policy(tiny_wan_dir) -> WanPolicy:  # a fresh LoRA is a no-op: the policy is the plain model
    return WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(rank=4))


def test_unipc_matches_wan_pipelines_own_sampler(policy, tiny_wan_dir):
    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    pipe.set_progress_bar_config(disable=True)
    noise, embeds, negative = latents(), policy.encode_prompts(["a red barn", "a canyon"]), policy.encode_negative(2)
    expected = pipe(
        prompt_embeds=embeds,
        negative_prompt_embeds=negative,
        height=SPEC.height,
        width=SPEC.width,
        num_frames=SPEC.num_frames,
        num_inference_steps=6,
        guidance_scale=4.0,
        latents=noise.clone(),
        output_type="latent",
    ).frames
    shift = pipe.scheduler.config.flow_shift
    guidance = Guidance(embeds, negative, 4.0)
    ours = sample_unipc(policy, noise, guidance, num_steps=6, flow_shift=shift)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    euler = sample_ode(policy, noise, guidance, flow_sigmas(6, shift))
    assert (euler - ours).abs().max() > 1e-3, "a different integrator of the same ODE"


def test_unknown_eval_sampler_lists_the_choices():
    with pytest.raises(ValueError, match="eval_sampler must be one of"):
        SamplingConfig(eval_sampler="ddim")
