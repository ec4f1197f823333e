"""The command line as users run it: help, printed configs that round-trip, overrides, and a whole tiny `fit`."""

import json
import os
import re
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import print_config, run_in_process, run_world_r1
from world_r1.video_io import read_video

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")


def test_help_lists_every_subcommand_with_one_line(capsys):
    assert run_in_process("--help") is None
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert listed == {"fit", "validate", "test", "pretrain", "tiny", "sample", "evaluate", "camera", "smoke"}


def test_an_unknown_subcommand_ends_with_one_line_listing_every_subcommand():
    message = run_in_process("camara", "--prompts", "x.txt")
    assert isinstance(message, str) and "\n" not in message and "unknown subcommand 'camara'" in message
    for name in ("fit", "validate", "test", "pretrain", "tiny", "sample", "evaluate", "camera", "smoke"):
        assert name in message
    assert "predict" not in message


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_a_bad_value_ends_with_one_line_naming_it_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    args = ("fit", "--config", TINY, "--model.sampling.noise_level", "-1", "--trainer.max_steps", "1")
    out = run_world_r1(*args, cwd=tmp_path)
    assert out.returncode == 1
    assert "error: sampling.noise_level must be >= 0, got -1.0." in out.stderr and "Traceback" not in out.stderr
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_R1_DEBUG", "1")  # the error itself escapes, so Python prints its traceback
    with pytest.raises(ValueError, match="noise_level must be >= 0"):
        run_in_process(*args)


@pytest.mark.parametrize(
    "configs",
    [
        ["tiny.yaml"],
        ["mini.yaml"],
        ["wan21.yaml"],
        ["wan21.yaml", "overlays/wan21_14b.yaml"],
        ["wan21.yaml", "overlays/wan22_ti2v_5b.yaml"],
        ["wan21.yaml", "overlays/wan22_a14b.yaml"],
        ["wan21.yaml", "overlays/wan21_i2v.yaml"],
    ],
)
def test_print_config_round_trips_with_overrides(tmp_path, configs):
    files = [item for config in configs for item in ("--config", str(ROOT / "configs" / config))]
    first = print_config("fit", *files, "--model.policy.lora.rank", "64", "--trainer.max_steps", "10")
    printed = yaml.safe_load(first)
    assert printed["model"]["policy"]["lora"]["rank"] == 64 and printed["trainer"]["max_steps"] == 10
    saved = tmp_path / "printed.yaml"
    saved.write_text(first)
    assert yaml.safe_load(print_config("fit", "--config", str(saved))) == printed


def test_bad_config_value_is_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = run_in_process("fit", "--config", TINY, "--model.video.num_frames", "10", "--trainer.max_steps", "1")
    assert code not in (None, 0)
    assert "4k+1" in f"{code}{capsys.readouterr().err}"  # the exit message, or what the parser printed


def test_tiny_command_writes_a_loadable_model(tmp_path):
    assert run_in_process("tiny", "--out", str(tmp_path / "wan")) is None
    assert (tmp_path / "wan" / "model_index.json").is_file()


@pytest.mark.slow
def test_tiny_fit_end_to_end(tmp_path):
    """`fit` on the tiny config trains, logs scalars, playable videos and evaluations, writes checkpoints, mp4s and
    the LoRA; `validate` re-runs the evaluation from the checkpoint."""
    out = run_world_r1("fit", "--config", TINY, "--trainer.max_steps", "6", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for noise in ("requires torchvision (not installed)", "litlogger", "LeafSpec"):  # third-party notices dropped
        assert noise not in out.stdout + out.stderr, noise
    run = tmp_path / "runs" / "tiny" / "version_0"
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("reward/total", "reward/red", "train/kl", "train/loss", "train/clip_fraction", "train/grad_norm"):
        assert tag in scalars, tag
    assert {"reward", "kl"} <= scalars  # what the progress bar shows
    assert len(events.Scalars("reward/total")) == 6
    for tag in ("eval/red/score", "eval/epipolar/score", "eval/epipolar/inlier_ratio", "eval/epipolar/degenerate"):
        assert [e.step for e in events.Scalars(tag)] == [0, 5, 6], tag  # the base model, every 5 steps, the end
    assert all((run / "eval" / f"fit_step_{step:06d}.json").is_file() for step in (0, 5, 6))
    assert "world-r1 run summary" in out.stdout and "eval/red/score" in out.stdout
    gif = events.Images("videos/prompt_0")[0]
    assert gif.encoded_image_string[:6] == b"GIF89a" and gif.width > 48  # a grid of the group's videos

    checkpoints = run / "checkpoints"  # every output of the run in its own version folder
    assert (checkpoints / "last.ckpt").is_file()
    state = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert all("lora_" in k for k in state["state_dict"])

    assert (run / "lora" / "pytorch_lora_weights.safetensors").is_file()
    videos = sorted((run / "videos").rglob("*.mp4"))
    assert videos and read_video(videos[0]).shape == (9, 3, 48, 48)

    # `validate` from the checkpoint: the same held-out evaluation (EMA weights, fixed seeds), through Lightning's loop
    checked = run_world_r1("validate", "--config", TINY, "--ckpt_path", str(checkpoints / "last.ckpt"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "eval/epipolar/score" in checked.stdout
    report = json.loads((tmp_path / "runs" / "tiny" / "version_1" / "eval" / "validate_step_000006.json").read_text())
    assert report["num_videos"] == 2 and set(report["metrics"]) >= {"red/score", "epipolar/score"}


@pytest.mark.slow
def test_one_option_moves_every_output_and_last_resumes_the_newest_run(tmp_path, monkeypatch):
    root = tmp_path / "elsewhere"
    monkeypatch.chdir(tmp_path)  # the command's working directory: nothing may land in its ./runs

    def fit(steps: int, *extra: str) -> None:
        args = ["fit", "--config", TINY, "--trainer.default_root_dir", str(root), "--trainer.max_steps", str(steps)]
        args += ["--model.sampling.train_steps", "2", "--model.sampling.sde_window_max_start", "0", *extra]
        assert run_in_process(*args) is None

    fit(2)
    run = root / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "lora").is_dir() and (run / "eval").is_dir()
    assert any(run.glob("events.out.tfevents.*")) and not (tmp_path / "runs").exists(), "nothing left in ./runs"
    fit(2, "--model.grpo.beta=0.003")  # a new run: its own folder, never a last-v1.ckpt next to the old run's
    assert (root / "version_1" / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    # the newest run, continued in its own folder
    fit(3, "--ckpt_path", "last", "--model.grpo.lr=0.0007", "--model.decoupled_weights.bright=0.5")
    assert not (root / "version_2").exists()
    resumed = torch.load(root / "version_1" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["world_r1"]["steps_done"] == 3
    # the command line's model options win over the checkpoint's, into a dict too; the rest is the checkpoint's
    hparams = resumed["hyper_parameters"]
    assert hparams["grpo"]["lr"] == 0.0007 and hparams["decoupled_weights"] == {"bright": 0.5}
    assert hparams["grpo"]["beta"] == 0.003  # the first run's option, not the config file's 0.004


def test_model_options_are_the_keys_a_command_line_sets():
    from world_r1.cli import model_options

    args = ["--config", "c.yaml", "--model.grpo.lr", "1e-4", "--model.seed=3", "--trainer.max_steps", "9", "--model"]
    assert model_options([*args, "m.yaml"]) == ["model.grpo.lr", "model.seed", "model"]


def test_a_command_line_option_is_restored_through_init_args_and_into_dicts():
    from jsonargparse import Namespace

    from world_r1.cli import restore_option

    def config(lr: float, weights: dict) -> Namespace:
        reward = Namespace(class_path="world_r1.rewards.WeightedReward", init_args=Namespace(weights=weights))
        return Namespace(model=Namespace(grpo=Namespace(lr=lr, beta=0.1), reward=reward))

    given, checkpoint = config(1e-4, {"a": 1.0, "b": 0.0}), config(2e-3, {"a": 3.0, "b": 2.0})
    assert restore_option(checkpoint, given, "model.reward.weights.b")  # typed without init_args
    assert checkpoint.model.reward.init_args.weights == {"a": 3.0, "b": 0.0}
    assert restore_option(checkpoint, given, "model.grpo.lr") and checkpoint.model.grpo.lr == 1e-4
    assert restore_option(checkpoint, given, "model.reward") and checkpoint.model.reward.init_args.weights["a"] == 1.0
    assert not restore_option(checkpoint, given, "model.grpo.nothing")
    assert not restore_option(checkpoint, given, "model.grpo.lr.deeper")


def test_last_is_the_newest_run_checkpoint_of_either_layout(tmp_path):
    from world_r1.cli import latest_run_checkpoint, run_version

    assert latest_run_checkpoint(tmp_path) is None
    paths = [tmp_path / "checkpoints" / "last.ckpt", tmp_path / "version_3" / "checkpoints" / "last.ckpt"]
    paths.append(tmp_path / "version_10" / "checkpoints" / "last.ckpt")
    for age, path in enumerate(reversed(paths)):  # the old layout's file is the newest
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        os.utime(path, (1e9 + age, 1e9 + age))
    assert latest_run_checkpoint(tmp_path) == paths[0] and run_version(paths[0]) is None
    paths[0].unlink()
    assert latest_run_checkpoint(tmp_path) == paths[1] and run_version(paths[1]) == 3


@pytest.mark.slow
def test_image_to_video_fit_and_sample_from_the_command_line(tmp_path, monkeypatch):
    """A tiny Wan2.1-I2V from `tiny --variant`, prompts with pictures: `fit` trains and evaluates, `sample --image`
    makes a video from a picture, and refuses one of another aspect ratio, naming it."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)  # the working directory of the commands run in this process
    assert run_in_process("tiny", "--variant", "wan2.1-i2v", "--out", str(tmp_path / "i2v")) is None
    Image.new("RGB", (48, 48), (30, 120, 200)).save(tmp_path / "lake.png")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "Camera pan left. A lake.", "image": "lake.png"})
        + "\n"
        + json.dumps({"prompt": "Camera dolly in. A lake.", "image": "lake.png"})
        + "\n"
    )
    data = ["--data.train_prompts", str(prompts), "--data.eval_prompts", str(prompts), "--data.decoupled_steps", "0"]
    model = ["--model.policy.model", str(tmp_path / "i2v"), "--model.policy.build_tiny_if_missing", "false"]
    out = run_world_r1("fit", "--config", TINY, "--trainer.max_steps", "2", *model, *data, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "runs" / "tiny" / "version_0"
    assert (run / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert json.loads((run / "eval" / "fit_step_000002.json").read_text())["num_videos"] == 2

    common = ["--model", str(tmp_path / "i2v"), "--dtype", "fp32", "--height", "48", "--width", "48"]
    common += ["--num_frames", "5", "--steps", "2", "--device", "cpu", "--lora", str(run / "lora")]
    sampled = run_world_r1(
        "sample", "--prompts", "Camera orbit left. A lake.", "--image", "lake.png", *common, cwd=tmp_path
    )
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert read_video(tmp_path / "samples" / "0000.mp4").shape == (5, 3, 48, 48)
    Image.new("RGB", (96, 48)).save(tmp_path / "wide.png")
    refused = run_in_process("sample", "--prompts", "A lake.", "--image", "wide.png", *common)
    assert "wide.png is 96x48 (aspect 2.00) but the videos are 48x48" in str(refused)  # the exit message


def _uncomment_meta(text: str) -> str:
    """The config with its optional S_meta term and weight (commented ``# meta:`` blocks) switched on."""
    lines, inside = [], False
    for line in text.splitlines():
        start = re.match(r"^(\s+)# (meta:.*)$", line)
        nested = re.match(r"^(\s+)#   (.*)$", line)
        if start:
            inside = True
            line = start.group(1) + start.group(2)
        elif inside and nested:
            line = nested.group(1) + "  " + nested.group(2)
        else:
            inside = False
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("overlay", [[], ["overlays/wan21_14b.yaml"]])
def test_the_optional_novel_view_critic_block_is_a_valid_config(tmp_path, overlay):
    enabled = tmp_path / "wan21.yaml"
    enabled.write_text(_uncomment_meta((ROOT / "configs" / "wan21.yaml").read_text()))
    overlays = [item for name in overlay for item in ("--config", str(ROOT / "configs" / name))]
    reward = yaml.safe_load(print_config("fit", "--config", str(enabled), *overlays))["model"]["reward"]["init_args"]
    assert reward["terms"]["meta"]["class_path"] == "world_r1.rewards.NovelViewReward"
    assert reward["terms"]["meta"]["init_args"]["model"].startswith("Qwen/Qwen2.5-VL")
    assert reward["weights"]["meta"] == 1.0
