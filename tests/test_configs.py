"""The Wan configs as one base and overlays: each overlay, applied after configs/wan21.yaml by the real parser,
changes exactly the settings listed here and nothing else (a list or a reward term given again replaces or merges as
jsonargparse does, and a change to the base reaches every overlay); an overlay is refused without its base, and the
configs that became overlays are named with the command that replaces them."""

import inspect
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import print_config, run_in_process
from world_r1.camera import MotionScale
from world_r1.cli import OVERLAYS
from world_r1.grpo import ForwardRLConfig
from world_r1.recipe import load_config

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "configs" / "wan21.yaml"
OVERLAY_DIR = ROOT / "configs" / "overlays"
ABSENT = "<absent>"
FSDP_16 = {
    "trainer.num_nodes": 2,
    "trainer.precision": "bf16-mixed",
    "trainer.strategy": {
        "class": "FSDPStrategy",
        "timeout": "0:30:00",  # printed as text, the default is a timedelta
        "auto_wrap_policy": ["diffusers.models.transformers.transformer_wan.WanTransformerBlock"],
        "activation_checkpointing_policy": ["diffusers.models.transformers.transformer_wan.WanTransformerBlock"],
    },
    "model.policy.dtype": "fp32",
    "model.policy.compute_dtype": "bf16",
    "model.policy.gradient_checkpointing": False,
    "model.policy.vae_tiling": True,
    "model.camera.strength": 0.4,
    "data.prompts_per_step": 192,
}
RELEASE_REWARD = {
    "model.policy.dtype": "fp32",
    "model.policy.compute_dtype": "bf16",
    "model.reward.terms.epipolar": ABSENT,
    "model.reward.terms.motion": ABSENT,
    "model.reward.terms.trajectory": ABSENT,
    "model.reward.terms.depth": ABSENT,
    "model.reward.terms.release3d": {"class": "Release3DReward", "parts": ["recon", "meta", "traj"]},
    "model.reward.terms.preference": {"class": "HPSReward", "same_frame": True},  # the models: test_release_configs
    "model.reward.weights.epipolar": ABSENT,
    "model.reward.weights.motion": ABSENT,
    "model.reward.weights.trajectory": ABSENT,
    "model.reward.weights.depth": ABSENT,
    "model.reward.weights.release3d": 3.0,
}
#: every setting each overlay changes in the base, as the merged config holds it (a class: its name and the settings
#: it is given that differ from the class's defaults; FULL_SHARD is FSDPStrategy's)


def _forward_rl(**changed) -> dict[str, Any]:
    """The whole model.forward_rl section (null in the base): ForwardRLConfig's defaults with the changes."""
    settings = asdict(ForwardRLConfig()) | changed
    return {"model.forward_rl": ABSENT} | {f"model.forward_rl.{k}": v for k, v in settings.items()}


EXPECTED: dict[str, dict[str, Any]] = {
    "awm.yaml": {
        "trainer.default_root_dir": "runs/wan21_awm",
        "model.sampling.rollout": "ode",
        "model.sampling.train_steps": 20,
        "model.grpo.std_mode": "global",
    }
    | _forward_rl(
        algorithm="awm",
        timesteps_per_sample=6,
        sigma_distribution="logit_normal",
        shared_sigmas=True,
        kl_beta=0.003,
        old_kl_beta=1.0,
        old_decay_max=0.3,
    ),
    "nft.yaml": {
        "trainer.default_root_dir": "runs/wan21_nft",
        "model.sampling.rollout": "ode",
        "model.sampling.train_steps": 10,
        "model.grpo.std_mode": "global",
    }
    | _forward_rl(),
    "wan21_14b.yaml": FSDP_16
    | {"trainer.default_root_dir": "runs/wan21_14b", "model.policy.model": "Wan-AI/Wan2.1-T2V-14B-Diffusers"},
    "wan21_i2v.yaml": FSDP_16
    | {
        "trainer.default_root_dir": "runs/wan21_i2v",
        "model.policy.model": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        "model.sampling.eval_steps": 40,
        "data.train_prompts": "data/i2v_train.jsonl",
        "data.decoupled_prompts": "data/i2v_dynamic.jsonl",
        "data.eval_prompts": "data/i2v_eval.jsonl",
    },
    "wan22_a14b.yaml": FSDP_16
    | {
        "trainer.default_root_dir": "runs/wan22_a14b",
        "model.policy.model": "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
        "model.policy.lora.experts": ["transformer"],
        "model.sampling.eval_steps": 40,
        "model.sampling.guidance_scale": 4.0,
        "model.sampling.guidance_scale_2": 3.0,
        "model.sampling.flow_shift": 12.0,
    },
    "wan22_ti2v_5b.yaml": {
        "trainer.default_root_dir": "runs/wan22_ti2v_5b",
        "model.policy.model": "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
        "model.policy.lora.experts": ["transformer"],
        "model.policy.vae_tiling": True,
        "model.video.height": 704,
        "model.video.width": 1280,
        "model.video.num_frames": 121,
        "model.video.fps": 24,
        "model.sampling.flow_shift": 5.0,
    },
    "wan21_sde.yaml": {
        "trainer.default_root_dir": "runs/wan21_sde",
        "trainer.callbacks[ModelCheckpoint].every_n_train_steps": 25,
        "trainer.callbacks[LoRAEMA].warmup": "updates",
        "trainer.callbacks[LoRAEMA].repeats": 1,
        "trainer.callbacks[VideoLogger].every_n_steps": 25,
        "trainer.callbacks[ConsistencyEvaluation].every_n_steps": 100,
        "model.policy.lora.init": "default",
        "model.policy.negative_prompt": "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走",  # noqa: E501
        "model.sampling.rollout": "sde",
        "model.sampling.sde_window_max_start": 24,
        "data.eval_prompts": "builtin:eval",
        "data.group_size": 8,
        "data.prompts_per_step": 8,
    },
    "world_r1_small.yaml": RELEASE_REWARD | {"trainer.default_root_dir": "runs/world_r1_small"},
    "world_r1_large.yaml": FSDP_16
    | RELEASE_REWARD
    | {"trainer.default_root_dir": "runs/world_r1_large", "model.policy.model": "Wan-AI/Wan2.1-T2V-14B-Diffusers"},
}


def _class_settings(spec: dict) -> dict[str, Any]:
    """A class spec as its short name and the settings that differ from the class's defaults."""
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    settings = {k: v for k, v in (spec.get("init_args") or {}).items() if k not in defaults or v != defaults[k]}
    return {"class": name} | settings


def _flat(node: Any, path: str = "") -> dict[str, Any]:
    """A printed config as ``dotted.path -> value``; a callback keyed by its class name, a class spec (strategy,
    reward terms) one value (:func:`_class_settings`), the composite reward looked through."""
    if isinstance(node, list) and node and all(isinstance(c, dict) and "class_path" in c for c in node):
        out = {}
        for spec in node:
            out |= _flat(spec.get("init_args") or {}, f"{path}[{spec['class_path'].rsplit('.', 1)[-1]}]")
        return out
    if isinstance(node, dict) and "class_path" in node:
        if path == "model.reward":
            return _flat(node.get("init_args") or {}, path)
        return {path: _class_settings(node)}
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out |= _flat(value, f"{path}.{key}" if path else key)
        return out
    return {path: node}


def _changes(base: dict, merged: dict) -> dict[str, Any]:
    flat_base, flat_merged = _flat(base), _flat(merged)
    keys = list(dict.fromkeys([*flat_base, *flat_merged]))
    changed = {k: flat_merged.get(k, ABSENT) for k in keys if flat_base.get(k, ABSENT) != flat_merged.get(k, ABSENT)}
    return {k: v for k, v in changed.items() if not (v is None and k not in flat_base)}  # a new class's unset field


@pytest.fixture(scope="module")
def base() -> dict:
    return load_config(BASE)


def test_every_overlay_is_listed_and_the_old_configs_are_gone():
    assert sorted(p.name for p in OVERLAY_DIR.glob("*.yaml")) == sorted(OVERLAYS) == sorted(EXPECTED)
    assert not any((ROOT / "configs" / name).exists() for name in OVERLAYS)


@pytest.mark.parametrize("overlay", sorted(EXPECTED))
def test_an_overlay_changes_exactly_its_settings_of_the_base(base, overlay):
    merged = load_config([BASE, OVERLAY_DIR / overlay])
    assert _changes(base, merged) == EXPECTED[overlay]


@pytest.mark.parametrize("overlay", ["world_r1_small.yaml", "world_r1_large.yaml"])
def test_the_release_reward_reads_the_camera_path_the_noise_is_warped_along(overlay):
    """The overlay cannot interpolate the base's camera (omegaconf resolves one file at a time): S_traj's target is
    Release3DReward's default, which must stay the base's camera.motion."""
    model = load_config([BASE, OVERLAY_DIR / overlay])["model"]
    assert model["reward"]["init_args"]["terms"]["release3d"]["init_args"]["motion"] is None
    assert MotionScale(**model["camera"]["motion"]) == MotionScale()


def test_print_config_of_base_and_overlay_round_trips(tmp_path):
    printed = print_config("fit", "--config", str(BASE), "--config", str(OVERLAY_DIR / "world_r1_large.yaml"))
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed, encoding="utf-8")
    assert yaml.safe_load(print_config("fit", "--config", str(saved))) == yaml.safe_load(printed)


def test_an_overlay_alone_or_an_old_config_name_ends_with_the_command_to_run():
    alone = run_in_process("fit", "--config", str(OVERLAY_DIR / "wan21_14b.yaml"))
    first_line = str(alone).splitlines()[0]
    assert "holds only what differs from a base config: give the base first, e.g. --config" in first_line
    moved = run_in_process("fit", "--config", "configs/wan21_14b.yaml")
    assert str(moved) == (
        "error: configs/wan21_14b.yaml is now an overlay of the base config: run --config configs/wan21.yaml "
        "--config configs/overlays/wan21_14b.yaml\n(set WORLD_R1_DEBUG=1 for the traceback)"
    )


def test_field_help_comes_from_the_attribute_docstrings(capsys):
    assert run_in_process("fit", "--model.policy.help") == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--model.policy.lora.rank RANK Adapter rank r. (type: int, default: 32)" in help_text
    assert run_in_process("fit", "--model.camera.help") == 0
    camera_help = " ".join(capsys.readouterr().out.split())
    assert "With warp gwtf: share of fresh noise blended into the warped noise" in camera_help
