"""The sampler without a training module: it makes the module's held-out videos and training rollouts exactly, from
the same seeds, and builds the guidance (each distinct picture encoded once, mixed batches refused)."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from PIL import Image

from tests.helpers import bare_trainer
from world_r1.camera import CameraConfig
from world_r1.camera.noise import starting_noise
from world_r1.data import PromptDataModule
from world_r1.grpo import SamplingConfig
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec
from world_r1.policy.conditioning import ImageCondition
from world_r1.sampling import Sampler
from world_r1.seeding import derive_seed

CAMERA = CameraConfig(enabled=True, reinject_steps=2)  # the release's warp and step-wise injection: seeds matter


def _module(model_dir: str, seed: int = 5, **sampling) -> WorldR1:
    settings = {"train_steps": 4, "eval_steps": 3, "sde_window": 2, "sde_window_max_start": 2} | sampling
    module = WorldR1(
        policy=PolicyConfig(model=model_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=32),
        video=VideoSpec(32, 32, 5),
        sampling=SamplingConfig(**settings),
        camera=CAMERA,
        seed=seed,
    )
    module.configure_model()
    return module


def _standalone(module: WorldR1) -> Sampler:
    """A sampler built from the module's parts only, as `sample` and the benchmarks build one."""
    return Sampler(module.policy, module.video, module.sampling, module.camera, seed=module.seed)


def test_the_same_seeds_give_the_modules_held_out_videos(tiny_wan_dir):
    module = _module(tiny_wan_dir)
    batch = {"prompts": ["Camera pan left. A barn.", "A hall."], "prompt_ids": torch.tensor([3, 8])}
    outputs = module.validation_step(batch, 0)
    seeds = [derive_seed(5, "eval", 3), derive_seed(5, "eval", 8)]  # the key every earlier evaluation used
    assert outputs["seeds"] == seeds
    videos = _standalone(module).generate(batch["prompts"], seeds)
    assert videos.shape == (2, 5, 3, 32, 32)
    assert torch.equal(outputs["videos"], videos)
    other = _standalone(module).generate(batch["prompts"], [seeds[1], seeds[0]])
    assert not torch.equal(other, videos)  # the seeds decide the videos


class _RolloutBeforeTheStep(L.Callback):
    """Decodes the standalone sampler's rollout of each batch before the module's step updates the weights."""

    def __init__(self) -> None:
        self.expected: list[torch.Tensor] = []
        self.produced: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        rollout, _ = _standalone(pl_module).rollout(batch)
        self.expected.append(pl_module.policy.decode(rollout.final))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.produced.append(outputs["videos"])


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
@pytest.mark.parametrize("rollout", ["sde", "unipc"])
def test_the_rollout_is_the_one_the_training_step_trains_on(tiny_wan_dir, tmp_path, rollout):
    module = _module(tiny_wan_dir, rollout=rollout, timestep_fraction=0.5)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Camera pan left. A barn.\nCamera push in. A library.\n")
    data = PromptDataModule(train_prompts=str(prompts), decoupled_prompts=None, group_size=2, prompts_per_step=2)
    seen = _RolloutBeforeTheStep()
    bare_trainer(2, default_root_dir=tmp_path, callbacks=[seen]).fit(module, data)
    assert len(seen.produced) == 2
    for expected, produced in zip(seen.expected, seen.produced, strict=True):
        assert torch.equal(expected, produced)
    assert not torch.equal(seen.produced[0], seen.produced[1])  # each step draws its own noise


def test_training_noise_is_seeded_per_sample_or_per_group(tiny_wan_dir):
    module = _module(tiny_wan_dir)
    groups, samples = torch.tensor([0, 0, 1, 1]), torch.tensor([4, 5, 6, 7])
    per_sample = _standalone(module).noise_seeds(3, groups, samples)
    assert per_sample == [derive_seed(5, "noise", 3, i) for i in (4, 5, 6, 7)]
    module.sampling.shared_noise = True
    assert module.sampler.noise_seeds(3, groups, samples) == [derive_seed(5, "noise", 3, g) for g in (0, 0, 1, 1)]
    prompts = ["Camera pan left. A barn."] * 2
    start = module.sampler.starting_noise(per_sample[:2], prompts)
    plain = starting_noise(per_sample[:2], tuple(start.noise.shape[1:]), prompts, CAMERA, 4)
    assert torch.equal(start.noise, plain.noise) and start.injection is not None  # the camera module's own noise


class _CountingPolicy:
    """Stands in for an image-to-video policy: records every batch of pictures it encodes."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode_images(self, pictures, height, width, num_frames) -> ImageCondition:
        self.calls.append(len(pictures))
        first = torch.stack([torch.tensor(picture.getpixel((0, 0)), dtype=torch.float32) for picture in pictures])
        return ImageCondition(first_frame=first)


def test_each_distinct_picture_is_encoded_once_and_mixed_batches_are_refused(tmp_path):
    paths = []
    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        Image.new("RGB", (8, 8), colour).save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    policy = _CountingPolicy()
    sampler = Sampler(policy, VideoSpec(32, 32, 5), SamplingConfig(), CameraConfig(), device=torch.device("cpu"))
    condition = sampler.image_condition([paths[0], paths[0], paths[1], paths[1]])
    assert policy.calls == [2]  # a group's samples share one encoding
    assert condition.first_frame[:, 0].tolist() == [255.0, 255.0, 0.0, 0.0]  # each sample gets its own picture
    assert sampler.image_condition(None) is None and sampler.image_condition([None, None]) is None
    with pytest.raises(ValueError, match="mixes prompts with and without an image: give every prompt an image"):
        sampler.image_condition([paths[0], None])
    assert policy.calls == [2]


def test_guidance_takes_the_configs_scales_unless_overridden():
    policy = SimpleNamespace(
        encode_prompts=lambda prompts: torch.ones(len(prompts), 3, 2),
        encode_negative=lambda count: torch.zeros(count, 3, 2),
    )
    sampling = SamplingConfig(guidance_scale=4.0, guidance_scale_2=3.0)
    sampler = Sampler(policy, VideoSpec(32, 32, 5), sampling, CameraConfig(), device=torch.device("cpu"))
    guidance = sampler.guidance(["a", "b"])
    assert (guidance.scale, guidance.scale_2, guidance.condition) == (4.0, 3.0, None)
    assert guidance.prompt_embeds.shape == guidance.negative_embeds.shape == (2, 3, 2)
    assert sampler.guidance(["a"], scale=1.5).scale == 1.5
