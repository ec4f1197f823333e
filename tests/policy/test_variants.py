"""Wan 2.2 (TI2V-5B, T2V-A14B) and image-to-video (Wan2.1-I2V) through the same policy: sampling equals diffusers'
own pipelines as they load each model, the exported LoRA loads into those pipelines, and the two experts of A14B
are run and trained as the boundary says."""

import numpy as np
import pytest
import torch
from diffusers import WanImageToVideoPipeline, WanPipeline
from PIL import Image

from tests.helpers import randomize_lora
from world_r1.callbacks.export import fuse_lora_into_pipeline
from world_r1.grpo.config import SamplingConfig
from world_r1.grpo.rollout import sample_rollout, sample_unipc
from world_r1.policy import LoRAConfig, VideoSpec, WanPolicy, flow_sigmas
from world_r1.policy.guidance import Guidance
from world_r1.policy.lora import LORA_WEIGHT_NAME, LORA_WEIGHT_NAME_2

FRAMES = 5
SIDE = {"wan2.1-i2v": 32, "wan2.2-ti2v": 64, "wan2.2-t2v-a14b": 32}  # TI2V: 16x VAE x 2x patch -> multiples of 32
# (variant, the pipeline class that runs it, with an image): every way a user drives these models in diffusers
CASES = [
    ("wan2.1-i2v", WanImageToVideoPipeline, True),
    ("wan2.2-ti2v", WanImageToVideoPipeline, True),
    ("wan2.2-ti2v", WanPipeline, False),
    ("wan2.2-t2v-a14b", WanPipeline, False),
]


def _picture(seed: int = 0, size: tuple[int, int] = (40, 40)) -> Image.Image:
    pixels = np.random.RandomState(seed).rand(size[1], size[0], 3)
    return Image.fromarray((pixels * 255).astype(np.uint8))


def _policy(model_dir: str, **lora) -> WanPolicy:
    return WanPolicy.from_pretrained(
        model_dir, dtype="fp32", lora=LoRAConfig(rank=4, alpha=8.0, **lora), max_sequence_length=16
    )


def _noise(policy: WanPolicy, side: int, batch: int = 2) -> torch.Tensor:
    vae = policy.vae.config
    shape = VideoSpec(side, side, FRAMES).latent_shape(vae.z_dim, vae.scale_factor_temporal, vae.scale_factor_spatial)
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))


def _both(variant, pipeline_class, with_image, model_dir, policy, guidance_scale_2=None):
    """(diffusers' latents, ours) for the same noise, prompts and picture: 4 UniPC steps with CFG."""
    side = SIDE[variant]
    pipe = pipeline_class.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    noise, embeds, negative = _noise(policy, side), policy.encode_prompts(["a red barn", "a canyon"]), None
    negative = policy.encode_negative(2)
    call = {"height": side, "width": side, "num_frames": FRAMES, "num_inference_steps": 4, "guidance_scale": 4.0}
    condition = None
    if with_image:
        call["image"] = _picture()
        condition = policy.encode_images([_picture(), _picture()], side, side, FRAMES)
    if guidance_scale_2 is not None:
        call["guidance_scale_2"] = guidance_scale_2
    return (
        pipe,
        pipe(
            prompt_embeds=embeds, negative_prompt_embeds=negative, latents=noise.clone(), output_type="latent", **call
        ).frames,
        sample_unipc(
            policy,
            noise,
            Guidance(embeds, negative, 4.0, guidance_scale_2, condition),
            4,
            pipe.scheduler.config.flow_shift,
        ),
    )


@pytest.mark.parametrize(("variant", "pipeline_class", "with_image"), CASES)
def test_sampling_equals_the_diffusers_pipeline_of_each_model(tiny_variant_dir, variant, pipeline_class, with_image):
    model_dir = tiny_variant_dir(variant)
    policy = _policy(model_dir)
    scale_2 = 3.0 if variant == "wan2.2-t2v-a14b" else None
    _, expected, ours = _both(variant, pipeline_class, with_image, model_dir, policy, scale_2)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    if with_image and variant == "wan2.2-ti2v":  # the first latent frame is the encoded picture, never denoised
        held = policy.encode_images([_picture()], SIDE[variant], SIDE[variant], FRAMES).first_frame
        torch.testing.assert_close(ours[:, :, :1], held.expand(2, -1, -1, -1, -1))


def test_a14b_runs_the_low_noise_expert_below_the_boundary(tiny_variant_dir):
    policy = _policy(tiny_variant_dir("wan2.2-t2v-a14b"))
    assert policy.boundary_ratio == 0.875
    assert [policy.expert_name(s) for s in (1.0, 0.875, 0.874, 0.1)] == ["transformer"] * 2 + ["transformer_2"] * 2
    x, embeds = _noise(policy, 32), policy.encode_prompts(["a", "b"])
    with torch.no_grad():
        low = policy.velocity(x, 0.5, embeds)
        direct = policy.transformer_2(
            hidden_states=x, timestep=torch.full((2,), 500.0), encoder_hidden_states=embeds, return_dict=False
        )[0]
    torch.testing.assert_close(low, direct)
    with pytest.raises(ValueError, match="both sides"):
        policy.velocity(x, torch.tensor([0.9, 0.5]), embeds)


@pytest.mark.parametrize(("variant", "pipeline_class", "with_image"), CASES)
@pytest.mark.filterwarnings("ignore:While injecting the PEFT adapters")  # diffusers pads T2V-style LoRAs for I2V
def test_exported_lora_loads_in_the_plain_diffusers_pipeline(
    tiny_variant_dir, tmp_path, variant, pipeline_class, with_image
):
    model_dir = tiny_variant_dir(variant)
    policy = _policy(model_dir)
    randomize_lora(policy, scale=2.0)
    policy.save_lora(tmp_path)
    pipe, before, ours = _both(variant, pipeline_class, with_image, model_dir, policy)
    pipe.load_lora_weights(str(tmp_path))
    if policy.transformer_2 is not None:
        pipe.load_lora_weights(str(tmp_path), weight_name=LORA_WEIGHT_NAME_2, load_into_transformer_2=True)
    side = SIDE[variant]
    call = {"height": side, "width": side, "num_frames": FRAMES, "num_inference_steps": 4, "guidance_scale": 4.0}
    if with_image:
        call["image"] = _picture()
    embeds, negative = policy.encode_prompts(["a red barn", "a canyon"]), policy.encode_negative(2)
    after = pipe(
        prompt_embeds=embeds,
        negative_prompt_embeds=negative,
        latents=_noise(policy, side),
        output_type="latent",
        **call,
    ).frames
    assert (after - before).abs().max() > 1e-3, "loading the LoRA must change diffusers' videos"
    torch.testing.assert_close(after, ours, rtol=1e-4, atol=1e-4)


def test_a14b_lora_on_one_expert_trains_only_its_steps(tiny_variant_dir, tmp_path):
    model_dir = tiny_variant_dir("wan2.2-t2v-a14b")
    low_only = _policy(model_dir, experts=["transformer_2"])
    assert low_only.adapted == ["transformer_2"]
    assert not any("lora_" in name for name, _ in low_only.transformer.named_parameters())
    assert all(k.startswith("transformer_2.") for k in low_only.lora_state_dict())
    sigmas = flow_sigmas(6, 3.0)  # steps 0-1 above sigma 0.875 (high-noise expert), 2-5 below
    assert low_only.trainable_runs(sigmas) == [range(2, 6)]
    assert _policy(model_dir).trainable_runs(sigmas) == [range(0, 2), range(2, 6)]
    config = SamplingConfig(train_steps=6, sde_window=2, sde_window_max_start=4)
    windows = {tuple(config.sde_steps(torch.Generator().manual_seed(s), [range(0, 2), range(2, 6)])) for s in range(50)}
    assert windows == {(0, 1), (2, 3), (3, 4), (4, 5)}  # never (1, 2), which would straddle the boundary
    low_only.save_lora(tmp_path)
    assert not (tmp_path / LORA_WEIGHT_NAME).exists() and (tmp_path / LORA_WEIGHT_NAME_2).is_file()
    fresh = _policy(model_dir, experts=["transformer_2"])
    fresh.load_lora(tmp_path)
    for (name, a), b in zip(low_only.lora_state_dict().items(), fresh.lora_state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_held_first_frame_is_kept_and_left_out_of_the_log_probabilities(tiny_variant_dir):
    policy = _policy(tiny_variant_dir("wan2.2-ti2v"))
    randomize_lora(policy)
    condition = policy.encode_images([_picture(), _picture(1)], 64, 64, FRAMES)
    config = SamplingConfig(train_steps=4, sde_window=2, sde_window_max_start=2, guidance_scale=1.0)
    embeds = policy.encode_prompts(["a", "b"])
    guidance = Guidance(embeds, None, 1.0, condition=condition)
    rollout = sample_rollout(policy, _noise(policy, 64), guidance, flow_sigmas(4, 3.0), config, [1, 2], None)
    torch.testing.assert_close(rollout.final[:, :, :1], condition.first_frame)
    torch.testing.assert_close(
        rollout.next_latents[:, :, :, :1], condition.first_frame[:, None].expand(-1, 2, -1, -1, -1, -1)
    )
    assert rollout.log_probs.isfinite().all()


def test_image_conditioning_errors_name_the_fix(tiny_variant_dir, tiny_wan_dir):
    i2v = _policy(tiny_variant_dir("wan2.1-i2v"))
    x, embeds = _noise(i2v, 32), i2v.encode_prompts(["a", "b"])
    with pytest.raises(ValueError, match="image-to-video model: every prompt needs an image"):
        i2v.velocity(x, 0.5, embeds)
    with pytest.raises(ValueError, match="text-to-video only"):
        _policy(tiny_wan_dir).encode_images([_picture()], 32, 32, FRAMES)
    with pytest.raises(
        ValueError, match=r"video.height=48 does not fit this Wan \(16x VAE, 2x patch\): use a multiple of 32"
    ):
        _policy(tiny_variant_dir("wan2.2-ti2v")).check_video(VideoSpec(48, 64, FRAMES))
    with pytest.raises(ValueError, match="names no transformer of this Wan"):
        _policy(tiny_wan_dir, experts=["transformer_2"])


@pytest.mark.parametrize("variant", ["wan2.1-t2v", "wan2.2-t2v-a14b"])
def test_fused_export_runs_as_the_adapted_policy_without_any_adapter(tiny_variant_dir, tmp_path, variant):
    model_dir = tiny_variant_dir(variant)
    policy = _policy(model_dir)
    randomize_lora(policy, scale=2.0)
    policy.save_lora(tmp_path / "lora")
    fused = WanPolicy.from_pretrained(
        fuse_lora_into_pipeline(model_dir, tmp_path / "lora", tmp_path / "fused"),
        dtype="fp32",
        lora=LoRAConfig(rank=4, alpha=8.0),
        max_sequence_length=16,
    )
    x, embeds = _noise(policy, 32), policy.encode_prompts(["a", "b"])
    for sigma in (0.95, 0.3):  # both experts of A14B
        with fused.reference():  # the fused weights alone, no adapter
            torch.testing.assert_close(fused.velocity(x, sigma, embeds), policy.velocity(x, sigma, embeds))


@pytest.mark.parametrize(
    ("variant", "with_image"), [("wan2.1-i2v", True), ("wan2.2-ti2v", True), ("wan2.2-t2v-a14b", False)]
)
@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_the_release_step_rescores_exactly_on_every_model(tiny_variant_dir, variant, with_image, tmp_path):
    """World-R1's UniPC rollout on image-to-video and two-expert Wans: every recorded transition re-scores to a ratio of
    exactly 1 under the update, a held first frame stays the image, and only adapted experts' steps are recorded."""
    from world_r1.camera import CameraConfig
    from world_r1.grpo import GRPOConfig, update_policy
    from world_r1.module import WorldR1
    from world_r1.policy import PolicyConfig
    from world_r1.sampling import unipc_model_sigmas

    side = SIDE[variant]
    module = WorldR1(
        policy=PolicyConfig(
            model=tiny_variant_dir(variant),
            dtype="fp32",
            lora=LoRAConfig(4, 8.0, experts=["transformer"]),
            max_sequence_length=16,
        ),
        video=VideoSpec(side, side, FRAMES),
        sampling=SamplingConfig(train_steps=6, rollout="unipc", timestep_fraction=0.5, guidance_scale=4.0),
        grpo=GRPOConfig(micro_batch_size=1, max_grad_norm=1e9),
        camera=CameraConfig(enabled=True),
    )
    module.configure_model()
    randomize_lora(module.policy)
    images = None
    if with_image:
        _picture(size=(side, side)).save(tmp_path / "first.png")
        images = [str(tmp_path / "first.png")] * 2
    batch = {"prompts": ["Camera pan left. A barn.", "Camera push in. A hall."], "step": 0, "phase": "main"}
    batch |= {"group_ids": torch.tensor([0, 0]), "sample_ids": torch.tensor([0, 1]), "images": images}
    rollout, guidance = module.sampler.rollout(batch)
    runs = module.policy.trainable_runs(unipc_model_sigmas(module.sampling))
    assert rollout.num_recorded == len([i for i in range(3) if any(i in run for run in runs)]) > 0
    optimizer = torch.optim.SGD(module.policy.lora_parameters(), lr=0.0)
    advantages, generator = torch.tensor([1.0, -1.0]), torch.Generator().manual_seed(0)
    update = update_policy(
        module.policy, rollout, advantages, guidance, module.grpo, optimizer, torch.Tensor.backward, generator
    )
    stats = update.stats
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-6) and stats["clip_fraction"] == 0.0
    if variant == "wan2.2-ti2v":  # the first latent frame is the encoded picture, held and left out
        torch.testing.assert_close(rollout.final[:, :, :1], guidance.condition.first_frame)
