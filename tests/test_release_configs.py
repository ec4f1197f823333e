"""The release's recipe in the configs: wan21.yaml with the overlay world_r1_small.yaml or world_r1_large.yaml sets
every knob as released, wan21.yaml alone only its stated departures, the docs' table is generated from them, and
each of the three configs trains on the tiny and on the mini model (its models and sizes swapped for small ones, its
recipe kept)."""

from pathlib import Path

import pytest
import torch
import yaml

from tests.geometry.test_lpips import random_heads, random_trunk
from tests.helpers import run_in_process
from tests.reconstruction.conftest import TINY_RES
from tests.rewards.test_hps import OpenClipReference
from tests.rewards.tiny_models import save_tiny_clip, save_tiny_qwen3_vl
from world_r1.recipe import ConfigStack, differences, load_config, recipe_table

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
BASE = CONFIGS / "wan21.yaml"
STACKS: dict[str, ConfigStack] = {
    "world_r1_small": [BASE, CONFIGS / "overlays" / "world_r1_small.yaml"],
    "world_r1_large": [BASE, CONFIGS / "overlays" / "world_r1_large.yaml"],
    "wan21": BASE,
}


def test_the_release_configs_set_every_knob_as_released():
    assert differences(STACKS["world_r1_small"]) == []
    assert differences(STACKS["world_r1_large"]) == []
    # the product's config: the release's step and camera path, its own (Kornia) rewards, weights stored in bf16
    assert set(differences(CONFIGS / "wan21.yaml")) == {
        "model.policy.dtype",
        "model.policy.compute_dtype",
        "model.reward.terms.release3d.reconstruction",
        "model.reward.terms.release3d.critic",
        "model.reward.weights.release3d",
        "model.reward.terms.preference.checkpoint",
    }
    sde = differences([BASE, CONFIGS / "overlays" / "wan21_sde.yaml"])
    assert "model.sampling.rollout" in sde  # the project's Flow-GRPO-Fast


def test_the_release_page_prints_the_recipe_table_of_the_configs():
    page = (ROOT / "docs" / "world_r1_release.md").read_text(encoding="utf-8")
    table = recipe_table(
        [[CONFIGS / "wan21.yaml", CONFIGS / "overlays" / "world_r1_small.yaml"], CONFIGS / "wan21.yaml"]
    )
    assert table in page, (
        "paste world_r1.recipe.recipe_table([[wan21.yaml, overlays/world_r1_small.yaml], wan21.yaml]) "
        "into docs/world_r1_release.md"
    )


def _tiny_reward_models(folder: Path) -> dict[str, str]:
    """Tiny random stand-ins of the release's reward models, saved in their real formats: Depth Anything 3, Qwen3-VL,
    HPSv2.1 (an open_clip state dict), LPIPS-AlexNet (torchvision's and lpips' key names) and a CLIP tokenizer."""
    pytest.importorskip("depth_anything_3", reason="the release's S_recon needs the depth-anything-3 package")
    from world_r1.reconstruction.da3 import TINY_CONFIG, DepthAnything3

    torch.manual_seed(0)
    models = {"da3": str(DepthAnything3(TINY_CONFIG, process_res=TINY_RES).save_pretrained(folder / "da3"))}
    models["critic"] = str(save_tiny_qwen3_vl(folder / "critic"))
    torch.save({"state_dict": OpenClipReference().state_dict()}, folder / "hps.pt")
    models["hps"], models["tokenizer"] = str(folder / "hps.pt"), str(save_tiny_clip(folder / "clip"))
    torch.save(random_trunk(0), folder / "alexnet.pth")
    torch.save({key: 0.05 * value for key, value in random_heads(1).items()}, folder / "alex.pth")
    models["alexnet"], models["heads"] = str(folder / "alexnet.pth"), str(folder / "alex.pth")
    return models


def _small(config: ConfigStack, tmp_path: Path, model: str, clip: str, mini: bool) -> Path:
    """``config`` with its recipe kept but run in seconds on CPU: the small model, small videos, few steps and
    prompts, one process, tiny random reward models in place of the real ones (PickScore; or Depth Anything 3,
    Qwen3-VL, LPIPS and HPSv2.1 for the release's terms)."""
    settings = load_config(config)  # the stack merged, as fit sees it
    settings["trainer"] |= {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}
    settings["trainer"] |= {"precision": "32-true", "max_steps": 2, "default_root_dir": str(tmp_path / "runs")}
    side = 128 if mini else 32
    model_settings = settings["model"]
    model_settings["policy"] |= {"model": model, "max_sequence_length": 32}
    model_settings["video"] |= {"height": side, "width": side, "num_frames": 9}
    model_settings["sampling"] |= {"train_steps": 4, "eval_steps": 2}
    terms = model_settings["reward"]["init_args"]["terms"]
    if "release3d" in terms:
        tiny = _tiny_reward_models(tmp_path / "reward-models")
        lpips = {
            "class_path": "world_r1.geometry.LPIPS",
            "init_args": {"backbone": tiny["alexnet"], "heads": tiny["heads"]},
        }
        terms["release3d"]["init_args"] |= {"reconstruction": tiny["da3"], "critic": tiny["critic"], "dtype": "fp32"}
        terms["release3d"]["init_args"] |= {"distance": lpips, "render_size": side, "process_res": TINY_RES}
        terms["preference"]["init_args"] |= {"checkpoint": tiny["hps"], "tokenizer": tiny["tokenizer"], "dtype": "fp32"}
    else:
        terms["preference"]["init_args"] |= {"model": clip, "tokenizer": None, "dtype": "fp32"}
    train, held_out = ("builtin:mini_train", "builtin:mini_eval") if mini else ("builtin:train", "builtin:eval")
    settings["data"] |= {"train_prompts": train, "decoupled_prompts": train, "eval_prompts": held_out}
    settings["data"] |= {"prompts_per_step": 1, "num_eval_prompts": 1}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(STACKS))
@pytest.mark.parametrize("model", ["tiny", "mini"])
def test_the_release_configs_train_on_the_tiny_and_the_mini_model(config, model, tiny_wan_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = str(save_tiny_clip(tmp_path / "clip"))
    source = tiny_wan_dir if model == "tiny" else "builtin:mini-wan"
    small = _small(STACKS[config], tmp_path, source, clip, model == "mini")
    assert run_in_process("fit", "--config", str(small)) is None
    (last,) = (tmp_path / "runs").glob("version_*/checkpoints/last.ckpt")
    state = torch.load(last, weights_only=False)
    assert state["world_r1"]["steps_done"] == 2
    assert state["hyper_parameters"]["sampling"]["rollout"] == "unipc"
    assert state["hyper_parameters"]["camera"]["warp"] == "gwtf"
