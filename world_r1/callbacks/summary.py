"""A rich table at the end of ``fit``: how the reward moved, the last evaluation, and where the outputs are."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # for the type hints only: the module imports nothing from callbacks
    from world_r1.module import WorldR1


class RunSummary(L.Callback):
    """Prints, once training ends, the reward at the first, best and last step of the main phase (the decoupled
    phase's apart: its total weighs other terms), the last KL, the latest 3D-consistency evaluation (from any
    callback exposing ``last_results``) next to the base model's (its ``first_results``), and the run's folders.

    The progress bar shows only the current step; this is the one screen to read after a run (or paste in an issue).
    """

    def __init__(self, console: Console | None = None) -> None:
        """
        Args:
            console: where to print (tests pass a recording console); default: a new stdout console.
        """
        self.console = console or Console()
        self.rewards: list[tuple[int, float]] = []  # (step, mean total reward) of the main phase's steps
        self.decoupled_rewards: list[tuple[int, float]] = []  # of the decoupled phase's (other weights, other scale)
        self._kl: float | None = None
        self._start = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        self._start = time.monotonic()
        self.rewards, self.decoupled_rewards = [], []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: WorldR1, *args: Any) -> None:
        metrics = trainer.callback_metrics
        if "reward" in metrics:
            decoupled = float(metrics.get("train/phase_decoupled", 0.0)) > 0
            rewards = self.decoupled_rewards if decoupled else self.rewards
            rewards.append((pl_module.steps_done, float(metrics["reward"])))
        if "kl" in metrics:
            self._kl = float(metrics["kl"])

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        self.console.print(self.table(trainer, pl_module))

    def table(self, trainer: L.Trainer, pl_module: WorldR1) -> Table:
        """The summary as a rich table (two columns: what, value)."""
        minutes = (time.monotonic() - self._start) / 60
        table = Table(title="world-r1 run summary", show_header=False, title_justify="left")
        table.add_column(style="bold cyan")
        table.add_column()
        table.add_row("steps", f"{pl_module.steps_done} ({minutes:.1f} min)")
        if self.rewards:
            (first_step, first), (last_step, last) = self.rewards[0], self.rewards[-1]
            best_step, best = max(self.rewards, key=lambda item: item[1])
            table.add_row("reward", f"{first:.4f} (step {first_step}) -> {last:.4f} (step {last_step})")
            table.add_row("best reward", f"{best:.4f} (step {best_step})")
        if self.decoupled_rewards:  # its total weighs other terms: not comparable with the main phase's
            (first_step, first), (last_step, last) = self.decoupled_rewards[0], self.decoupled_rewards[-1]
            table.add_row("decoupled reward", f"{first:.4f} (step {first_step}) -> {last:.4f} (step {last_step})")
        if self._kl is not None:
            table.add_row("kl (last)", f"{self._kl:.3g}")
        for callback in trainer.callbacks:
            first = getattr(callback, "first_results", {})
            for name, value in getattr(callback, "last_results", {}).items():
                base = f"{first[name]:.4f} (base) -> " if name in first else ""
                table.add_row(f"eval/{name}", f"{base}{value:.4f}")
        table.add_row("logs", str(trainer.log_dir or trainer.default_root_dir))
        checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "")
        if checkpoint:
            table.add_row("last checkpoint", checkpoint)
        return table
