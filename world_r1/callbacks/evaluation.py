"""Periodic 3D-consistency evaluation: held-out prompts, fixed seeds, ODE sampling, EMA weights, rewards as metrics.

Training rewards are measured on SDE rollouts of training prompts with the raw weights; this answers the question a
user of the trained model asks: how consistent are deterministic videos of unseen prompts with the weights we ship?
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from world_r1.callbacks.ema import find_ema
from world_r1.geometry import GeometrySettings
from world_r1.metrics import RewardTermMeans, score_terms
from world_r1.rewards.base import Reward
from world_r1.video_io import write_mp4

if TYPE_CHECKING:  # for the type hints only: the module imports nothing from callbacks
    from world_r1.module import WorldR1


class ConsistencyEvaluation(L.Callback):
    """Every ``every_n_steps`` training steps, and in every ``validate``/``test`` run, scores held-out videos.

    Videos come from the module's ``validation_step``, made by the sampler of ``sample``
    (:class:`world_r1.sampling.Sampler`: fixed seed per prompt id, ``sampling.eval_steps`` ODE steps) for the data
    module's evaluation prompts, sharded over processes by its ``eval_dataloader``. During training this callback
    runs that loader itself, with the EMA weights swapped in; in ``validate``/``test`` Lightning's loop runs
    the same loader and :class:`~world_r1.callbacks.LoRAEMA` swaps the weights.

    Each evaluation logs ``eval/<term>/<key>`` (a torchmetrics mean over all videos of all processes) and writes
    ``<log_dir>/eval/<stage>_step_<n>.json`` with the means and every video's values. The terms are ordinary
    :class:`~world_r1.rewards.Reward` modules, so any reward configured with ``class_path`` is also a metric.
    """

    def __init__(
        self,
        terms: dict[str, Reward] | None = None,
        geometry: GeometrySettings | None = None,
        every_n_steps: int = 0,
        batch_size: int = 1,
        use_ema: bool = True,
        write_videos: bool = False,
        at_start_and_end: bool = True,
    ) -> None:
        """
        Args:
            terms: name -> reward module measured; default: the module's own training reward terms.
            geometry: how the geometric terms' analysis of each batch is made; default: the training reward's.
            every_n_steps: evaluate after every this many training steps (0: only in validate/test runs).
            batch_size: videos generated at once during training-time evaluation.
            use_ema: during training, evaluate the EMA weights when a LoRAEMA callback runs.
            write_videos: also write each evaluated video as ``<log_dir>/eval/<stage>_step_<n>/<prompt_id>.mp4``.
            at_start_and_end: with ``every_n_steps``, also evaluate before the first step of a new run (the base
                model) and after the last one (unless the run was stopped early), so a run's summary compares them.
        """
        if every_n_steps < 0 or batch_size < 1:
            raise ValueError("ConsistencyEvaluation: every_n_steps must be >= 0 and batch_size >= 1.")
        self.terms = terms
        self.geometry = geometry
        self.every_n_steps = every_n_steps
        self.batch_size = batch_size
        self.use_ema = use_ema
        self.write_videos = write_videos
        self.metrics = RewardTermMeans()
        self.at_start_and_end = at_start_and_end
        self.last_results: dict[str, float] = {}  # the latest evaluation's means, e.g. for a run summary
        self.first_results: dict[str, float] = {}  # the base model's (step 0), when this run evaluated it
        self._evaluated_step: int | None = None
        self._rows: list[dict[str, Any]] = []
        self._known: dict[str, list[str]] = {}

    # ------------------------------------------------------------------------------------------- training
    def on_train_start(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        if self.every_n_steps and self.at_start_and_end and pl_module.steps_done == 0:
            self.first_results = self.evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: WorldR1, *args: Any) -> None:
        if self.every_n_steps and pl_module.steps_done % self.every_n_steps == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        # not when the run was asked to stop (SIGTERM from a scheduler, Ctrl-C): its grace period is for the checkpoint
        if trainer.should_stop or not (self.every_n_steps and self.at_start_and_end):
            return
        if self._evaluated_step != pl_module.steps_done:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: WorldR1) -> dict[str, float]:
        """Generate and score this process's share of the held-out prompts now; returns the synced means."""
        self._start()
        ema = find_ema(trainer) if self.use_ema else None
        with ema.swapped(pl_module) if ema is not None else nullcontext(), torch.no_grad():
            for index, batch in enumerate(self._batches(trainer)):
                outputs = pl_module.validation_step(batch, index)
                self._score(trainer, pl_module, outputs, batch["weights"], "fit")
        results = self._finish(trainer, pl_module, "fit")
        metrics = {f"eval/{name}": value for name, value in results.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=pl_module.steps_done)
        self._evaluated_step = pl_module.steps_done
        return results

    def _batches(self, trainer: L.Trainer) -> DataLoader:
        """This process's share of the held-out prompts: the data module's evaluation loader, the one Lightning's
        validate/test loops run, at this callback's batch size."""
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "eval_dataloader"):
            raise ValueError("ConsistencyEvaluation needs a data module with eval_dataloader() (PromptDataModule).")
        return datamodule.eval_dataloader(trainer.global_rank, trainer.world_size, self.batch_size)

    # ----------------------------------------------------------------------------------- validate and test
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        self._start()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: WorldR1, outputs: Any, batch: Any, *args: Any, **kwargs: Any
    ) -> None:
        if not trainer.sanity_checking and isinstance(outputs, dict) and "videos" in outputs:
            weights = batch.get("weights") if isinstance(batch, dict) else None
            self._score(trainer, pl_module, outputs, weights, self._stage(trainer))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        if trainer.sanity_checking or not self.metrics.keys():
            return
        results = self._finish(trainer, pl_module, self._stage(trainer))
        # already reduced over processes by torchmetrics: no second sync
        pl_module.log_dict({f"eval/{name}": value for name, value in results.items()}, sync_dist=False)

    on_test_epoch_start = on_validation_epoch_start
    on_test_batch_end = on_validation_batch_end
    on_test_epoch_end = on_validation_epoch_end

    @staticmethod
    def _stage(trainer: L.Trainer) -> str:
        return "test" if trainer.testing else "validate" if trainer.state.fn == "validate" else "fit"

    # -------------------------------------------------------------------------------------------- common
    def _start(self) -> None:
        self.metrics.reset()
        self._rows = []

    def _terms(self, pl_module: WorldR1) -> tuple[dict[str, Reward], GeometrySettings | None]:
        """The terms measured and the settings of their geometry analysis."""
        if self.terms is None:
            return dict(pl_module.reward.terms), self.geometry or pl_module.reward.geometry
        for term in self.terms.values():
            term.to(pl_module.device)  # feature extractors hold buffers; the module's own terms move with it
        return self.terms, self.geometry

    def _score(
        self,
        trainer: L.Trainer,
        pl_module: WorldR1,
        outputs: dict[str, Any],
        weights: torch.Tensor | None,
        stage: str,
    ) -> None:
        videos: torch.Tensor = outputs["videos"]
        metadata = {"cameras": outputs.get("cameras") or [None] * len(videos), "prompt_ids": outputs["prompt_ids"]}
        terms, geometry = self._terms(pl_module)
        values = score_terms(terms, videos, outputs["prompts"], self._known, geometry, **metadata)
        for name in values:
            term, key = name.split("/", 1)
            if key not in self._known.setdefault(term, []):
                self._known[term].append(key)
        self.metrics.to(pl_module.device)
        self.metrics.update(values, weights)
        keep = torch.ones(len(videos)) if weights is None else weights
        for i in torch.nonzero(keep > 0).flatten().tolist():
            prompt_id = int(outputs["prompt_ids"][i])
            row = {"prompt_id": prompt_id, "prompt": outputs["prompts"][i], "seed": int(outputs["seeds"][i])}
            self._rows.append(row | {name: float(value[i]) for name, value in values.items()})
            if self.write_videos:
                folder = self._dir(trainer) / f"{stage}_step_{pl_module.steps_done:06d}"
                write_mp4(folder / f"{prompt_id:04d}.mp4", videos[i], pl_module.video.fps)

    def _finish(self, trainer: L.Trainer, pl_module: WorldR1, stage: str) -> dict[str, float]:
        """Sync the means over processes, collect every video's row on rank zero, and write the JSON file."""
        results = self.metrics.compute()
        rows = sorted(_gather_objects(self._rows), key=lambda row: row["prompt_id"])  # each prompt on one process
        if trainer.is_global_zero:
            path = self._dir(trainer) / f"{stage}_step_{pl_module.steps_done:06d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            report = {
                "stage": stage,
                "step": pl_module.steps_done,
                "num_videos": len(rows),
                "metrics": results,
                "videos": rows,
            }
            path.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
            rank_zero_info(f"Evaluation at step {pl_module.steps_done} written to {path}")
        self.last_results = results
        return results

    @staticmethod
    def _dir(trainer: L.Trainer) -> Path:
        return Path(trainer.log_dir or trainer.default_root_dir) / "eval"


def _gather_objects(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All processes' rows, concatenated (every process calls this; without torch.distributed, the local rows)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(rows)
    gathered: list[list[dict[str, Any]] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, rows)
    return [row for part in gathered for row in part or []]
