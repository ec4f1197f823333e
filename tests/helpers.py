"""Small helpers shared by tests (fixtures live in conftest.py)."""

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import lightning as L
import torch

from world_r1.cli import main
from world_r1.policy import VideoSpec, WanPolicy
from world_r1.synthetic import rigid_video

SPEC = VideoSpec(height=32, width=32, num_frames=5)
ROOT = Path(__file__).resolve().parents[1]


def run_world_r1(
    *args: str, cwd: Path | None = None, timeout: int = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m world_r1 ARGS`` in a fresh process, as a user runs it (this checkout importable, output captured)."""
    env = os.environ | {"PYTHONPATH": str(ROOT)} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "world_r1", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_in_process(*args: str) -> int | str | None:
    """``python -m world_r1 ARGS`` through ``world_r1.cli.main`` in this process: the entry point the command runs,
    without a fresh interpreter's ~10 s of imports (run_world_r1 covers those). Returns ``None`` when ``main``
    returns, else the exit code (0, or the one-line message a bad value ends with)."""
    argv = [sys.argv[0], *args]  # as in the command's process (LightningCLI reads and compares sys.argv)
    with mock.patch.object(sys, "argv", argv):
        try:
            main(argv[1:])
        except SystemExit as exit_:
            return 0 if exit_.code is None else exit_.code
    return None


def print_config(*args: str) -> str:
    """What ``python -m world_r1 ARGS --print_config`` prints (YAML), in this process (:func:`run_in_process`)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = run_in_process(*args, "--print_config")
    # --print_config prints, then exits 0; a bad value exits with its message
    assert code == 0, f"--print_config did not exit 0 after printing: {code!r}"
    return printed.getvalue()


def randomize_lora(policy: WanPolicy, seed: int = 0, scale: float = 0.5) -> None:
    """LoRA B starts at zero (a no-op adapter); give every adapter weight a random value so it changes outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.lora_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * scale)


def latents(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Random latents of the SPEC-sized video."""
    return torch.randn(batch, *SPEC.latent_shape(), generator=torch.Generator().manual_seed(seed))


def bare_trainer(max_steps: int, **kwargs) -> L.Trainer:
    """A CPU Trainer with the fit loop only (no logger, checkpoints, progress bar or summary); ``kwargs`` add to it."""
    settings = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "use_distributed_sampler": False,
    }
    return L.Trainer(max_steps=max_steps, **settings | kwargs)


class StepOutputs(L.Callback):
    """Keeps what each training step returned (its ``outputs``: videos, prompts, rewards, advantages, step)."""

    def __init__(self) -> None:
        self.outputs: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.outputs.append(outputs)


def textured_frame(size: int = 128) -> torch.Tensor:
    """One textured grey frame (1, 1, size, size) of a rendered rigid scene, for detector and matching tests."""
    return rigid_video(2, size, size, seed=0).video[:1].mean(1, keepdim=True)
