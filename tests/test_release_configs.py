"""The release's recipe in the configs: world_r1_small.yaml and world_r1_large.yaml set every knob as released,
wan21.yaml only its stated departures, the README's table is generated from them, and each of the three configs
trains on the tiny and on the mini model (its models and sizes swapped for small ones, its recipe kept)."""

from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import run_in_process
from tests.rewards.tiny_models import save_tiny_clip
from world_r1.recipe import differences, recipe_table

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def test_the_release_configs_set_every_knob_as_released():
    assert differences(CONFIGS / "world_r1_small.yaml") == []
    assert differences(CONFIGS / "world_r1_large.yaml") == []
    # the product's config: the release's step and camera path, its own rewards, weights stored in bf16
    assert set(differences(CONFIGS / "wan21.yaml")) == {
        "model.policy.dtype",
        "model.policy.compute_dtype",
        "model.reward.terms.trajectory.form",
    }
    assert "model.sampling.rollout" in differences(CONFIGS / "wan21_sde.yaml")  # the project's Flow-GRPO-Fast


def test_the_readme_prints_the_recipe_table_of_the_configs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = recipe_table([CONFIGS / "world_r1_small.yaml", CONFIGS / "wan21.yaml"])
    assert table in readme, "paste world_r1.recipe.recipe_table([world_r1_small.yaml, wan21.yaml]) into the README"


def _small(config: Path, tmp_path: Path, model: str, clip: str, mini: bool) -> Path:
    """``config`` with its recipe kept but run in seconds on CPU: the small model, small videos, few steps and
    prompts, one process, a tiny CLIP in PickScore's place."""
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["trainer"] |= {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}
    settings["trainer"] |= {"precision": "32-true", "max_steps": 2, "default_root_dir": str(tmp_path / "runs")}
    side = 128 if mini else 32
    model_settings = settings["model"]
    model_settings["policy"] |= {"model": model, "max_sequence_length": 32}
    model_settings["video"] |= {"height": side, "width": side, "num_frames": 9}
    model_settings["sampling"] |= {"train_steps": 4, "eval_steps": 2}
    preference = model_settings["reward"]["terms"]["preference"]["init_args"]
    preference |= {"model": clip, "tokenizer": None, "dtype": "fp32"}
    train, held_out = ("builtin:mini_train", "builtin:mini_eval") if mini else ("builtin:train", "builtin:eval")
    settings["data"] |= {"train_prompts": train, "decoupled_prompts": train, "eval_prompts": held_out}
    settings["data"] |= {"prompts_per_step": 1, "num_eval_prompts": 1}
    path = tmp_path / config.name
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("config", ["world_r1_small.yaml", "world_r1_large.yaml", "wan21.yaml"])
@pytest.mark.parametrize("model", ["tiny", "mini"])
def test_the_release_configs_train_on_the_tiny_and_the_mini_model(config, model, tiny_wan_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = str(save_tiny_clip(tmp_path / "clip"))
    source = tiny_wan_dir if model == "tiny" else "builtin:mini-wan"
    small = _small(CONFIGS / config, tmp_path, source, clip, model == "mini")
    assert run_in_process("fit", "--config", str(small)) is None
    (last,) = (tmp_path / "runs").glob("version_*/checkpoints/last.ckpt")
    state = torch.load(last, weights_only=False)
    assert state["world_r1"]["steps_done"] == 2
    assert state["hyper_parameters"]["sampling"]["rollout"] == "unipc"
    assert state["hyper_parameters"]["camera"]["warp"] == "gwtf"
