"""A user's journey, end to end, as the commands a user types (each a fresh process, on the shipped mini Wan, with
short settings): train, sample from the checkpoint and from the exported LoRA, score the samples, validate the
checkpoint, resume for one more step, load the LoRA into plain diffusers, and read the TensorBoard events. Each
step's output is checked, not only its exit code."""

import json
import math

import pytest
import torch
from diffusers import WanPipeline
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import ROOT, run_world_r1
from world_r1.policy.loading import BUILTIN_MODELS
from world_r1.video_io import read_video

CONFIG = str(ROOT / "configs" / "mini.yaml")
PROMPT = "Camera pan left. A red tower in front of a brick wall on a tiled floor."
SHORT = [
    *("--data.group_size", "4", "--data.num_eval_prompts", "2"),
    *("--model.sampling.train_steps", "6", "--model.sampling.eval_steps", "4"),
    *("--trainer.default_root_dir", "runs"),
]


def _ok(out) -> str:
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_train_sample_evaluate_validate_resume_and_ship(tmp_path):
    # 1. train: two Flow-GRPO steps of the demo config
    _ok(run_world_r1("fit", "--config", CONFIG, "--trainer.max_steps", "2", *SHORT, cwd=tmp_path, timeout=900))
    run = tmp_path / "runs" / "version_0"
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file() and (run / "lora" / "pytorch_lora_weights.safetensors").is_file()

    # 2. sample from the checkpoint a CLI run wrote (its settings saved as plain dicts)
    args = ("sample", "--checkpoint", str(checkpoint), "--prompts", PROMPT, "--out", "from_ckpt", "--steps", "4")
    _ok(run_world_r1(*args, cwd=tmp_path))
    video = read_video(tmp_path / "from_ckpt" / "0000.mp4")
    assert video.shape == (9, 3, 128, 128) and 0.0 < float(video.mean()) < 1.0

    # 3. sample from the exported LoRA on the base model
    args = ("sample", "--model", "builtin:mini-wan", "--lora", str(run / "lora"), "--prompts", PROMPT)
    args += ("--out", "from_lora", "--steps", "4", "--height", "128", "--width", "128", "--num_frames", "9")
    _ok(run_world_r1(*args, "--dtype", "fp32", cwd=tmp_path))
    assert read_video(tmp_path / "from_lora" / "0000.mp4").shape == (9, 3, 128, 128)

    # 4. score the samples
    _ok(run_world_r1("evaluate", "--videos", "from_ckpt", "--device", "cpu", cwd=tmp_path))
    report = json.loads((tmp_path / "from_ckpt" / "world_r1_eval.json").read_text())
    assert report["rows"] and all(math.isfinite(v) for v in report["means"].values())

    # 5. validate the checkpoint: the held-out evaluation through Lightning's loop, into a new version folder
    args = ("validate", "--config", CONFIG, "--ckpt_path", str(checkpoint), *SHORT)
    assert "eval/epipolar/score" in _ok(run_world_r1(*args, cwd=tmp_path, timeout=900))
    (evaluation,) = (tmp_path / "runs" / "version_1" / "eval").glob("validate_step_*.json")
    metrics = json.loads(evaluation.read_text())["metrics"]
    assert metrics and all(math.isfinite(v) for v in metrics.values())

    # 6. resume the newest training run for one more step: the step count continues, in the same folder
    args = ("fit", "--config", CONFIG, "--trainer.max_steps", "3", *SHORT, "--ckpt_path", "last")
    _ok(run_world_r1(*args, cwd=tmp_path, timeout=900))
    state = torch.load(checkpoint.resolve(), weights_only=False)
    assert state["world_r1"]["steps_done"] == 3 and state["global_step"] == 3

    # 7. the exported LoRA in plain diffusers
    pipe = WanPipeline.from_pretrained(BUILTIN_MODELS["mini-wan"])
    pipe.load_lora_weights(str(run / "lora"))
    frames = pipe(PROMPT, height=128, width=128, num_frames=9, num_inference_steps=2, output_type="pt").frames
    assert frames.shape == (1, 9, 3, 128, 128) and torch.isfinite(frames).all()

    # 8. TensorBoard holds the documented tags, the resumed step included
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "reward/total",
        "reward/epipolar",
        "adv/abs_mean",
        "train/kl",
        "train/grad_norm",
        "eval/epipolar/score",
    ):
        assert tag in scalars, tag
    assert [e.step for e in events.Scalars("reward/total")] == [0, 1, 2]
