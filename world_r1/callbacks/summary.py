"""The run summary after ``fit``: a few headline numbers with a verdict each on the console, the full table in the run
folder (``summary.md`` for people, ``summary.json`` for scripts).

A verdict compares the first and the last held-out evaluation prompt by prompt (same prompt, same seed): the mean
paired difference against its standard error, so "better" means beyond the seed-to-seed noise of the prompts it saw.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table

from world_r1.metrics import paired_difference

if TYPE_CHECKING:  # for the type hints only: the module imports nothing from callbacks
    from world_r1.module import WorldR1

NOISE_SE = 2.0  # a mean paired difference within this many standard errors of zero is noise (about 95%)
_ROW_KEYS = ("prompt_id", "prompt", "seed")  # what names a held-out video; every other key of a row is a metric
_FIT_REPORT = re.compile(r"fit_step_(\d+)\.json")


def verdict(stats: dict[str, float], higher_is_better: bool | None = True) -> str:
    """``better``/``worse`` (``up``/``down`` for a metric without a better direction) when the mean paired difference
    is at least :data:`NOISE_SE` standard errors from zero, ``within noise`` below that, and ``no verdict`` under two
    prompts (no spread to measure the noise by) or where nothing was measured."""
    if stats["n"] < 2 or math.isnan(stats["z"]):
        return "no verdict"
    if abs(stats["z"]) < NOISE_SE:
        return "within noise"
    if higher_is_better is None:
        return "up" if stats["z"] > 0 else "down"
    return "better" if (stats["z"] > 0) == higher_is_better else "worse"


def verdict_line(stats: dict[str, float], higher_is_better: bool | None = True) -> str:
    """One line: the verdict, the mean paired difference, how many standard errors that is, over how many prompts."""
    word = verdict(stats, higher_is_better)
    if stats["n"] == 0:
        return f"{word}: not measured"
    spread = f"{abs(stats['z']):.1f} SE" if math.isfinite(stats["z"]) else "no spread"
    return f"{word}: {stats['diff']:+.4f} ({spread}; {stats['n']} prompt{'s' * (stats['n'] != 1)})"


def compare_evaluations(first: list[dict[str, Any]], last: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric, :func:`paired_difference` of two evaluations' rows (one per video: ``prompt_id``, ``prompt``,
    ``seed`` and the metrics), paired on the video, plus its verdict; ``score`` metrics are better higher."""
    later = {tuple(row.get(k) for k in _ROW_KEYS): row for row in last}
    pairs = [(row, later[key]) for row in first if (key := tuple(row.get(k) for k in _ROW_KEYS)) in later]
    if not pairs:
        return {}
    names = [n for n in pairs[0][0] if n not in _ROW_KEYS and all(n in a and n in b for a, b in pairs)]
    comparison = {}
    for name in names:
        base, trained = (torch.tensor([float(pair[side][name]) for pair in pairs]) for side in (0, 1))
        stats = paired_difference(base, trained)
        direction = True if name.endswith("/score") else None
        comparison[name] = stats | {"verdict": verdict(stats, direction), "line": verdict_line(stats, direction)}
    return comparison


def evaluation_reports(folder: Path, up_to_step: int) -> list[dict[str, Any]]:
    """The training evaluations written under ``folder`` (``fit_step_<n>.json``) up to ``up_to_step``, oldest first;
    a resumed run's folder also holds its first part's, the base model's among them."""
    found = [(int(m[1]), p) for p in folder.glob("fit_step_*.json") if (m := _FIT_REPORT.fullmatch(p.name))]
    return [json.loads(path.read_text()) for step, path in sorted(found) if step <= up_to_step]


class RunSummary(L.Callback):
    """After training, prints the headline: steps, the training reward at the first, best and last step of the main
    phase (the decoupled phase's apart: its total weighs other terms), the last KL and each held-out term's score at
    the first and last evaluation with a verdict; then writes the full table (every evaluation metric, with its
    paired statistics) to ``<log_dir>/summary.md`` and ``summary.json`` and prints where.

    The held-out values are read from the evaluation files of the run folder
    (:class:`~world_r1.callbacks.ConsistencyEvaluation` writes one per evaluation, every video's values in it).
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
        self._start = time.monotonic()  # again at the start of fit

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
        summary = self.summary(trainer, pl_module)
        self.console.print(headline_table(summary))
        folder = Path(summary["log_dir"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
        (folder / "summary.md").write_text(markdown(summary))
        self.console.print(f"full summary: {folder / 'summary.md'} (and summary.json)", highlight=False)

    def summary(self, trainer: L.Trainer, pl_module: WorldR1) -> dict[str, Any]:
        """Everything the summary says, as plain values (``summary.json``)."""
        log_dir = str(trainer.log_dir or trainer.default_root_dir)
        summary: dict[str, Any] = {
            "steps": pl_module.steps_done,
            "minutes": (time.monotonic() - self._start) / 60,
            "reward": _trend(self.rewards),
            "decoupled_reward": _trend(self.decoupled_rewards),
            "kl": self._kl,
            "evaluation": None,
            "log_dir": log_dir,
            "last_checkpoint": getattr(trainer.checkpoint_callback, "last_model_path", "") or None,
        }
        reports = evaluation_reports(Path(log_dir) / "eval", pl_module.steps_done)
        if reports:
            first, last = reports[0], reports[-1]
            metrics = compare_evaluations(first["videos"], last["videos"]) if len(reports) > 1 else {}
            for name, value in last["metrics"].items():
                metrics.setdefault(name, {"last": value})["last"] = value
                if len(reports) > 1 and name in first["metrics"]:
                    metrics[name]["first"] = first["metrics"][name]
            summary["evaluation"] = {
                "first_step": first["step"] if len(reports) > 1 else None,
                "last_step": last["step"],
                "videos": last["num_videos"],
                "metrics": metrics,
            }
        return summary


def _trend(values: list[tuple[int, float]]) -> dict[str, tuple[int, float]] | None:
    """First, best and last (step, value) of a series; None when empty."""
    if not values:
        return None
    return {"first": values[0], "best": max(values, key=lambda item: item[1]), "last": values[-1]}


def _rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The run's figures other than the evaluation's, as (what, value)."""
    rows = [("steps", f"{summary['steps']} ({summary['minutes']:.1f} min)")]
    for key, label in (("reward", "reward"), ("decoupled_reward", "decoupled reward")):
        if trend := summary[key]:  # the decoupled phase's total weighs other terms: not comparable with the main's
            (first_step, first), (last_step, last) = trend["first"], trend["last"]
            rows.append((label, f"{first:.4f} (step {first_step}) -> {last:.4f} (step {last_step})"))
            if key == "reward":
                rows.append(("best reward", f"{trend['best'][1]:.4f} (step {trend['best'][0]})"))
    if summary["kl"] is not None:
        rows.append(("kl (last)", f"{summary['kl']:.3g}"))
    return rows


def _values(stats: dict[str, Any], first_step: int | None) -> str:
    """``first (base) -> last``: the base model is step 0's (a resumed run's first evaluation may be later)."""
    if "first" not in stats:
        return f"{stats['last']:.4f}"
    return f"{stats['first']:.4f} ({'base' if first_step == 0 else f'step {first_step}'}) -> {stats['last']:.4f}"


def _paths(summary: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("logs", summary["log_dir"])]
    return rows + ([("last checkpoint", summary["last_checkpoint"])] if summary["last_checkpoint"] else [])


def headline_table(summary: dict[str, Any]) -> Table:
    """The console's part: the run's figures and each held-out term's score, with its verdict where two evaluations
    were paired."""
    evaluation = summary["evaluation"] or {"metrics": {}, "first_step": None}
    scores = [
        (f"eval/{name}", _values(stats, evaluation["first_step"]), stats.get("line", ""))
        for name, stats in evaluation["metrics"].items()
        if name.endswith("/score")
    ]
    compared = evaluation["first_step"] is not None
    table = Table(title="world-r1 run summary", show_header=False, title_justify="left", caption_justify="left")
    table.add_column(style="bold cyan", no_wrap=True)
    for _ in range(2 if compared else 1):
        table.add_column(overflow="fold")
    for row in [*_rows(summary), *scores, *_paths(summary)]:
        table.add_row(*row[: 3 if compared else 2])
    if compared:
        table.caption = (
            f"held-out: {_span(evaluation)}, paired by prompt and seed; within noise = under {NOISE_SE:g} standard "
            "errors of the mean paired difference"
        )
    return table


def _span(evaluation: dict[str, Any]) -> str:
    """Which evaluations the verdicts compare: ``step 0 (base) vs step 40``."""
    base = " (base)" if evaluation["first_step"] == 0 else ""
    return f"step {evaluation['first_step']}{base} vs step {evaluation['last_step']}"


def markdown(summary: dict[str, Any]) -> str:
    """The full summary: the run's figures, then every evaluation metric with its paired statistics."""
    lines = ["# world-r1 run summary", "", "| | |", "|---|---|"]
    lines += [f"| {what} | {value} |" for what, value in [*_rows(summary), *_paths(summary)]]
    evaluation = summary["evaluation"]
    if evaluation:
        if evaluation["first_step"] is None:
            lines += ["", f"## Held-out evaluation at step {evaluation['last_step']} ({evaluation['videos']} videos)"]
        else:
            lines += [
                "",
                f"## Held-out evaluation: {_span(evaluation)}",
                "",
                f"Paired by prompt and seed; within noise = the mean paired difference is under {NOISE_SE:g} standard "
                "errors from zero. Scores are better higher; other metrics say only up or down.",
            ]
        lines += [
            "",
            "| metric | first | last | mean paired diff | SE | prompts | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, stats in evaluation["metrics"].items():
            cells = [_number(stats.get(key), sign=key == "diff") for key in ("first", "last", "diff", "se")]
            lines.append(f"| {name} | {' | '.join(cells)} | {stats.get('n', '')} | {stats.get('verdict', '')} |")
    return "\n".join(lines) + "\n"


def _number(value: float | None, sign: bool = False) -> str:
    return "" if value is None else f"{value:+.4g}" if sign else f"{value:.4g}"
