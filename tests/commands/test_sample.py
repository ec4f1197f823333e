"""`sample`: prompts in, mp4 files out, from an exported LoRA or from a training checkpoint (EMA weights by default)."""

import pytest
import torch

from tests.helpers import randomize_lora
from world_r1.callbacks import LoRAEMA
from world_r1.camera import CameraConfig
from world_r1.commands.sample import load_sampler_from_checkpoint, sample
from world_r1.module import WorldR1
from world_r1.policy import WAN_NEGATIVE_PROMPT, LoRAConfig, PolicyConfig, VideoSpec
from world_r1.sampling import Sampler
from world_r1.seeding import derive_seed
from world_r1.video_io import read_video, write_mp4

SIZE = {"height": 32, "width": 32, "num_frames": 5}


@pytest.fixture(scope="module")
def trained(tiny_wan_dir, tmp_path_factory):
    """A tiny module with a random (non-zero) LoRA, its exported adapter, and a checkpoint whose EMA differs."""
    root = tmp_path_factory.mktemp("trained")
    module = WorldR1(
        policy=PolicyConfig(model=tiny_wan_dir, dtype="fp32", lora=LoRAConfig(4, 8.0)),
        video=VideoSpec(**SIZE, fps=8),
    )
    module.configure_model()
    randomize_lora(module.policy, seed=1)
    lora = module.policy.save_lora(root / "lora")
    ema = LoRAEMA(decay=0.0)
    ema.on_fit_start(None, module)
    randomize_lora(module.policy, seed=2)  # raw weights move on; the average keeps seed 1's
    trainable = {k: v for k, v in module.state_dict().items() if "lora_" in k}
    checkpoint = root / "last.ckpt"
    torch.save(
        {"hyper_parameters": dict(module.hparams), "state_dict": trainable, "callbacks": {"LoRAEMA": ema.state_dict()}},
        checkpoint,
    )
    return {"module": module, "lora": lora, "checkpoint": checkpoint, "root": root}


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_prompt_file_to_mp4_files(trained, tiny_wan_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Camera pan left. A barn.\n# a comment\nCamera fixed. A library.\n")
    common = {"model": tiny_wan_dir, "dtype": "fp32", "steps": 2, "device": "cpu", **SIZE}
    paths = sample(str(prompts), out=str(tmp_path / "a"), lora=str(trained["lora"]), **common)
    assert [p.name for p in paths] == ["0000.mp4", "0001.mp4"]
    assert (tmp_path / "a" / "prompts.txt").read_text().splitlines() == [
        "0000.mp4\tCamera pan left. A barn.",
        "0001.mp4\tCamera fixed. A library.",
    ]
    first = read_video(paths[0])
    assert first.shape == (5, 3, 32, 32)
    again = sample(str(prompts), out=str(tmp_path / "b"), lora=str(trained["lora"]), **common)
    torch.testing.assert_close(read_video(again[0]), first)  # seeded: reruns give the same videos
    base = sample(str(prompts), out=str(tmp_path / "c"), **common)
    assert (read_video(base[0]) - first).abs().max() > 0.02  # the adapter changes the videos


def test_checkpoint_samples_with_ema_weights_unless_told_otherwise(trained):
    ema_sampler = load_sampler_from_checkpoint(trained["checkpoint"], use_ema=True)
    raw_sampler = load_sampler_from_checkpoint(trained["checkpoint"], use_ema=False)
    assert ema_sampler.video == VideoSpec(**SIZE, fps=8)  # the video size comes from the checkpoint
    reference = trained["module"]
    for mine, raw in zip(ema_sampler.policy.lora_parameters(), raw_sampler.policy.lora_parameters(), strict=True):
        assert not torch.equal(mine, raw)
    for raw, expected in zip(raw_sampler.policy.lora_parameters(), reference.policy.lora_parameters(), strict=True):
        torch.testing.assert_close(raw, expected)


def test_checkpoint_command_writes_videos(trained, tmp_path):
    paths = sample("Camera push in. A cave.", out=str(tmp_path), checkpoint=str(trained["checkpoint"]), steps=2)
    sampler = load_sampler_from_checkpoint(trained["checkpoint"])
    expected = sampler.generate(["Camera push in. A cave."], [derive_seed(0, "sample", 0)], num_steps=2)[0]
    video = read_video(paths[0])
    assert video.shape == (5, 3, 32, 32)
    encoded = read_video(write_mp4(tmp_path / "expected.mp4", expected, fps=8))  # the same lossy encoding
    torch.testing.assert_close(video, encoded, atol=2e-2, rtol=0)


def test_without_a_checkpoint_sampling_is_wans_own_unless_told_otherwise(tiny_wan_dir, tmp_path, monkeypatch):
    used = []
    monkeypatch.setattr(
        Sampler,
        "generate",
        lambda self, *a, **k: (
            used.append((self.sampling.eval_sampler, self.policy.negative_prompt)) or torch.zeros(1, 5, 3, 32, 32)
        ),
    )
    common = {"model": tiny_wan_dir, "dtype": "fp32", "steps": 2, "device": "cpu", **SIZE}
    sample("A barn.", out=str(tmp_path / "a"), **common)
    sample("A barn.", out=str(tmp_path / "b"), sampler="euler", negative_prompt="blurry", **common)
    assert used == [("unipc", WAN_NEGATIVE_PROMPT), ("euler", "blurry")]
    with pytest.raises(ValueError, match="eval_sampler must be one of"):
        sample("A barn.", out=str(tmp_path / "c"), sampler="ddim", **common)


def test_camera_conditioning_is_the_checkpoints_unless_told_otherwise(trained, tmp_path, monkeypatch):
    from world_r1.camera import CameraConfig

    used = []
    monkeypatch.setattr(
        Sampler, "generate", lambda self, *a, **k: used.append(self.camera) or torch.zeros(1, 5, 3, 32, 32)
    )
    monkeypatch.setattr(WorldR1, "__init__", lambda *a, **k: pytest.fail("sample built a training module"))
    checkpoint = trained["root"] / "warped.ckpt"
    state = torch.load(trained["checkpoint"], weights_only=False)
    state["hyper_parameters"]["camera"] = CameraConfig(enabled=True, strength=0.4)
    torch.save(state, checkpoint)
    sample("A barn.", out=str(tmp_path / "a"), checkpoint=str(checkpoint), steps=1)
    sample("A barn.", out=str(tmp_path / "b"), checkpoint=str(checkpoint), steps=1, no_camera=True)
    common = {"model": trained["module"].policy_config.model, "dtype": "fp32", "steps": 1, "device": "cpu", **SIZE}
    sample("A barn.", out=str(tmp_path / "c"), lora=str(trained["lora"]), **common)
    sample("A barn.", out=str(tmp_path / "d"), lora=str(trained["lora"]), camera=CameraConfig(enabled=True), **common)
    assert [(c.enabled, c.strength) for c in used] == [(True, 0.4), (False, 0.4), (False, 0.35), (True, 0.35)]


def test_a_checkpoint_from_before_step_wise_re_injection_samples_as_it_was_trained(trained, tmp_path):
    state = torch.load(trained["checkpoint"], weights_only=False)
    camera = CameraConfig(enabled=True)
    del camera.__dict__["reinject_steps"]  # what unpickling a CameraConfig saved before the field existed gives
    state["hyper_parameters"]["camera"] = camera
    torch.save(state, tmp_path / "old.ckpt")
    assert load_sampler_from_checkpoint(tmp_path / "old.ckpt").camera.reinject_steps == 0
    assert load_sampler_from_checkpoint(trained["checkpoint"]).camera.reinject_steps == CameraConfig().reinject_steps


def test_a_checkpoint_of_another_model_is_refused_naming_the_keys(trained, tmp_path):
    state = torch.load(trained["checkpoint"], weights_only=False)
    state["state_dict"]["policy.transformer.blocks.99.attn1.to_q.lora_A.default.weight"] = torch.zeros(4, 4)
    torch.save(state, tmp_path / "other.ckpt")
    with pytest.raises(
        ValueError, match=r"does not match the model it names: unexpected keys \['policy.transformer.blocks.99"
    ):
        load_sampler_from_checkpoint(tmp_path / "other.ckpt")
