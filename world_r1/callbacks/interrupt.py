"""Stop cleanly on SIGTERM (cluster schedulers) or Ctrl-C: finish the step, write ``last.ckpt``, exit."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info


class SaveOnInterrupt(L.Callback):
    """On SIGTERM or a first Ctrl-C, the current step completes, ``last.ckpt`` is written and training stops.

    A step is the unit of consistency (rollout, update, EMA), so stopping between steps makes the checkpoint an exact
    resume point. A second Ctrl-C aborts at once. Lightning's own SIGTERM flag is honoured too.
    """

    def __init__(self) -> None:
        self._requested = False
        self._previous_sigint: Any = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._requested:
            raise KeyboardInterrupt
        self._requested = True
        rank_zero_info("\nInterrupt: finishing this step, then saving last.ckpt (Ctrl-C again to abort now).")

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._requested = True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._requested = False
        self._previous_sigint = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_sigint)
        previous_sigterm = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self._on_sigterm(signum, frame)
            if callable(previous_sigterm):  # Lightning's notifier, which also tells the other ranks
                previous_sigterm(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if not (self._requested or trainer.received_sigterm):
            return
        path = last_checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        rank_zero_info(f"Saved {path}; resume with `--ckpt_path last` (or this path).")
        trainer.should_stop = True


def last_checkpoint_path(trainer: L.Trainer) -> Path:
    """Where ``--ckpt_path last`` will look: the ModelCheckpoint folder, else ``<root>/checkpoints``."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
