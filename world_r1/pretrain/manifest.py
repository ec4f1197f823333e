"""A manifest next to every pre-trained model: how to reproduce it (command, seed, commit, data) and what it cost."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

MANIFEST_NAME = "world_r1_manifest.json"


def git_commit(directory: str | os.PathLike = ".") -> str | None:
    """The checked-out commit (with ``+dirty`` when tracked files differ), or None outside a git work tree."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _plain(value: Any) -> Any:
    """Hyper-parameters (dataclasses, tuples, dicts) as JSON values; any other object as its class and settings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    return describe(value)


def describe(obj: object) -> dict[str, Any]:
    """An object (e.g. a dataset) as its class path and its public scalar and dataclass attributes."""
    settings = {
        k: _plain(v)
        for k, v in vars(obj).items()
        if not k.startswith("_") and (isinstance(v, str | int | float | bool) or hasattr(v, "__dataclass_fields__"))
    }
    return {"class_path": f"{type(obj).__module__}.{type(obj).__qualname__}", **settings}


def stage_record(
    trainer: L.Trainer, module: L.LightningModule, started: float, commit: str | None = None
) -> dict[str, Any]:
    """What one training stage did: command, settings, steps, time, final metrics, parameter counts. ``commit`` is
    the code's commit when the stage started (default: now)."""
    datamodule = trainer.datamodule
    return {
        "stage": getattr(module, "stage", None),
        "command": " ".join([Path(sys.executable).name, "-m", "world_r1", *sys.argv[1:]]),
        "git_commit": commit or git_commit(),
        "seed": os.environ.get("PL_GLOBAL_SEED"),
        "model": _plain(dict(module.hparams)),
        "data": describe(datamodule) | {"train": describe(datamodule.train)} if hasattr(datamodule, "train") else None,
        "steps": trainer.global_step,
        "wall_seconds": round(time.time() - started, 1),
        "metrics": {k: round(float(v), 5) for k, v in trainer.callback_metrics.items() if v.numel() == 1},
        "parameters": {
            name: sum(p.numel() for p in part.parameters())
            for name in ("text_encoder", "vae", "transformer")
            if isinstance(part := getattr(module, name, None), torch.nn.Module)
        },
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()},
    }


def read_manifest(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a model directory (``{"stages": [...], ...}``), or ``{}`` when it has none."""
    path = Path(model_dir) / MANIFEST_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_manifest(out_dir: str | os.PathLike, record: dict[str, Any], previous: str | os.PathLike | None) -> Path:
    """Write ``out_dir/world_r1_manifest.json`` holding the stages that made the model: those in the manifest of the
    model it started from (``previous``, a model directory, if it has one) followed by ``record``."""
    stages = read_manifest(previous).get("stages", []) if previous is not None else []
    path = Path(out_dir) / MANIFEST_NAME
    path.write_text(json.dumps({"stages": [*stages, record]}, indent=2) + "\n")
    return path
