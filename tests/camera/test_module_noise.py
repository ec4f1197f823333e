"""Noise warping inside the Flow-GRPO module: configs turn it on, rollouts warp by prompt (or the JSONL camera
override), static prompts keep plain noise, and a training step runs with it on the tiny model."""

import json
from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser

import world_r1.camera.noise as noise_file
from tests.helpers import StepOutputs, bare_trainer
from world_r1.camera import CameraConfig, MotionScale
from world_r1.data import PromptDataModule, load_prompts
from world_r1.grpo import SamplingConfig
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec
from world_r1.recipe import load_config

CONFIGS = Path(__file__).parents[2] / "configs"


def camera_section(*names: str) -> CameraConfig:
    """``model.camera`` of a shipped YAML config (a base and its overlays), built the way LightningCLI builds it."""
    parser = ArgumentParser()
    parser.add_argument("--camera", type=CameraConfig)
    section = load_config([CONFIGS / name for name in names])["model"]["camera"]
    return parser.instantiate_classes(parser.parse_object({"camera": section})).camera


@pytest.mark.parametrize(
    ("names", "strength"),
    [
        (("wan21.yaml",), 0.35),
        (("wan21.yaml", "overlays/wan21_14b.yaml"), 0.4),
        (("wan21.yaml", "overlays/world_r1_small.yaml"), 0.35),
        (("wan21.yaml", "overlays/world_r1_large.yaml"), 0.4),
    ],
)
def test_configs_turn_warping_on_with_world_r1_strengths_and_camera_path(names, strength):
    camera = camera_section(*names)
    assert camera.enabled and camera.strength == strength and camera.degradation == 0.35
    assert camera.motion == MotionScale()  # the release's camera path, magnitudes and units


def tiny_module(model_dir: str, camera: CameraConfig) -> WorldR1:
    module = WorldR1(
        policy=PolicyConfig(model=model_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=32),
        video=VideoSpec(32, 32, 9),
        sampling=SamplingConfig(train_steps=2, eval_steps=2, sde_window=1, sde_window_max_start=1),
        camera=camera,
    )
    module.configure_model()
    return module


def test_starting_noise_is_warped_by_prompt_and_override(tiny_wan_dir):
    plain = tiny_module(tiny_wan_dir, CameraConfig(enabled=False))
    warped = tiny_module(tiny_wan_dir, CameraConfig(enabled=True, warp="transport", injection="initial", strength=0.5))
    prompts = ["Camera pan left. A barn.", "Camera fixed. A barn.", "A barn.", "Camera fixed. A barn."]
    cameras = [None, None, None, "truck right"]
    base = plain.sampler.starting_noise([7, 7, 7, 7], prompts, cameras).noise
    out = warped.sampler.starting_noise([7, 7, 7, 7], prompts, cameras).noise
    assert torch.equal(base[0], base[1])  # disabled: the seed alone decides
    assert not torch.equal(out[0], base[0]) and torch.equal(out[0, :, 0], base[0, :, 0])  # frame 0 is kept
    assert torch.equal(out[1], base[1]) and torch.equal(out[2], base[2])  # no camera motion: plain noise
    assert not torch.equal(out[3], base[3]) and not torch.equal(out[3], out[0])  # the override is used
    assert torch.equal(warped.sampler.starting_noise([7]).noise, base[:1])  # no prompts: plain noise


def test_the_release_starts_from_plain_noise_and_injects_every_prompt_with_a_camera(tiny_wan_dir):
    plain = (
        tiny_module(tiny_wan_dir, CameraConfig(enabled=False)).sampler.starting_noise([7, 7, 7], ["A barn."] * 3).noise
    )
    release = tiny_module(tiny_wan_dir, CameraConfig(enabled=True))  # Go-with-the-Flow, step-wise delta
    start = release.sampler.starting_noise([7, 7, 7], ["Camera pan left. A barn.", "Camera fixed. A barn.", "A barn."])
    assert torch.equal(start.noise, plain)  # x_T is the plain noise, independent of the warp
    assert start.injection.active.tolist() == [1.0, 1.0, 0.0]  # "fixed" pulls toward a still camera; no camera: none


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_a_training_step_runs_with_warping_and_sees_the_jsonl_camera(tiny_wan_dir, tmp_path, monkeypatch):
    seen = []
    original = noise_file.warped_noise

    def spy(noise, prompt, camera, config, temporal_factor, generator=None, device="cpu"):
        seen.append((prompt, camera))
        return original(noise, prompt, camera, config, temporal_factor, generator, device)

    monkeypatch.setattr(noise_file, "warped_noise", spy)
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "Camera fixed. A barn.", "camera": "orbit left slowly"}) + "\n")
    module = tiny_module(tiny_wan_dir, CameraConfig(enabled=True))
    data = PromptDataModule(train_prompts=str(path), decoupled_prompts=None, group_size=2, prompts_per_step=1)
    steps = StepOutputs()
    trainer = bare_trainer(1, default_root_dir=tmp_path, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[steps])
    trainer.fit(module, data)
    assert module.steps_done == 1
    assert seen == [("Camera fixed. A barn.", "orbit left slowly")] * 2
    assert torch.isfinite(steps.outputs[0]["rewards"]["total"]).all()


def test_an_unknown_jsonl_camera_fails_at_load_with_its_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "A barn."}) + "\n" + json.dumps({"prompt": "A hall.", "camera": "spin"}))
    with pytest.raises(ValueError, match=r"prompts.jsonl:2: \"camera\": .*unknown camera word 'spin'"):
        load_prompts(path)
