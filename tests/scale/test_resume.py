"""Crash safety with real processes: SIGTERM mid-run saves `last.ckpt`, `--ckpt_path last` continues exactly, and an
unreadable checkpoint is refused with a clear message and nothing overwritten."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).parents[2]
TINY = ROOT / "configs" / "tiny.yaml"
MAX_STEPS = 6


def _config(tmp_path: Path, model_dir: str) -> Path:
    """configs/tiny.yaml at test size: a checkpoint every step, a CSV log flushed every step, no media."""
    config = yaml.safe_load(TINY.read_text())
    trainer = config["trainer"]
    trainer.update(max_steps=MAX_STEPS, default_root_dir=str(tmp_path / "run"), enable_progress_bar=False)
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path / "logs"), "name": "run", "flush_logs_every_n_steps": 1},
    }
    trainer["callbacks"] = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {
                "dirpath": str(tmp_path / "ckpt"),
                "every_n_train_steps": 1,
                "save_last": True,
                "save_top_k": -1,
            },
        },
        {"class_path": "world_r1.callbacks.LoRAEMA", "init_args": {"decay": 0.9}},
    ]
    model = config["model"]
    model["policy"].update(model=model_dir, build_tiny_if_missing=False, max_sequence_length=32)
    model["video"].update(height=32, width=32, num_frames=5)
    model["sampling"].update(train_steps=4, eval_steps=4, sde_window_max_start=2)
    config["data"].update(group_size=4, prompts_per_step=1, main_steps=3, decoupled_steps=1)  # crosses a phase change
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fit(config: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "world_r1", "fit", "--config", str(config), *args]
    return subprocess.Popen(
        command, cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _losses(logs: Path) -> dict[int, float]:
    """train/loss by step from every CSV log under ``logs``."""
    out = {}
    for file in logs.rglob("metrics.csv"):
        for row in csv.DictReader(file.open()):
            if row.get("train/loss"):
                out[int(row["step"])] = float(row["train/loss"])
    return out


@pytest.mark.slow
def test_sigterm_then_resume_continues_as_if_never_stopped(tiny_wan_dir, tmp_path):
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "interrupted"
    reference_dir.mkdir(), run_dir.mkdir()
    reference = _fit(_config(reference_dir, tiny_wan_dir))
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-3000:]
    expected = _losses(reference_dir / "logs")
    assert sorted(expected) == list(range(MAX_STEPS))

    config = _config(run_dir, tiny_wan_dir)
    process = _fit(config)
    deadline = time.monotonic() + 600
    while not (run_dir / "ckpt" / "epoch=0-step=2.ckpt").exists():  # two steps done: stop it during the third
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=600)
    stopped_at = torch.load(run_dir / "ckpt" / "last.ckpt", weights_only=False)["global_step"]
    assert 2 <= stopped_at < MAX_STEPS, f"stopped at step {stopped_at}: {err[-2000:]}"

    resumed = _fit(config, "--ckpt_path", "last")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    got = _losses(run_dir / "logs")
    assert sorted(got) == list(range(MAX_STEPS)), "every step ran exactly once across the two runs"
    for step in range(MAX_STEPS):
        assert got[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-7), step


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_truncated_checkpoint_is_refused_clearly(tiny_wan_dir, tmp_path):
    config = _config(tmp_path, tiny_wan_dir)
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    good = torch.save({"state_dict": {}, "global_step": 1}, checkpoints / "good.ckpt")
    del good
    broken = checkpoints / "last.ckpt"
    data = (checkpoints / "good.ckpt").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    process = _fit(config, "--ckpt_path", str(broken))
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "is unreadable" in err and "truncated or corrupt" in err and "good.ckpt" in err, err[-3000:]
    assert broken.read_bytes() == data[: len(data) // 2]  # nothing overwritten
    assert sorted(p.name for p in checkpoints.iterdir()) == ["good.ckpt", "last.ckpt"]


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    """The writer dies half-way through the file: `last.ckpt` still holds the previous, complete checkpoint."""
    from fsspec.implementations.local import LocalFileOpener

    from world_r1.checkpoint_io import CheckedCheckpointIO

    io = CheckedCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "state_dict": {"w": torch.ones(1000)}}, path)
    before = path.read_bytes()

    def write_half_then_die(self, data):
        self.f.write(bytes(data)[: len(data) // 2])
        raise OSError("disk went away")

    monkeypatch.setattr(LocalFileOpener, "write", write_half_then_die)
    with pytest.raises(OSError, match="disk went away"):
        io.save_checkpoint({"global_step": 2, "state_dict": {"w": torch.zeros(1000)}}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert io.load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left beside it
