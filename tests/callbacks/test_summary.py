"""The run summary's verdicts on hand-made evaluations, and the files it writes to the run folder."""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console

from world_r1.callbacks.summary import RunSummary, compare_evaluations, evaluation_reports, verdict, verdict_line
from world_r1.metrics import paired_difference

NOISE = [0.01, -0.02, 0.015, -0.005, 0.0, 0.01, -0.01, 0.0]  # zero mean, a spread like seed-to-seed noise


def _stats(base: list[float], trained: list[float]) -> dict[str, float]:
    return paired_difference(torch.tensor(base), torch.tensor(trained))


def _rows(values: dict[str, list[float]], seed: int = 7) -> list[dict]:
    count = len(next(iter(values.values())))
    return [
        {"prompt_id": i, "prompt": f"prompt {i}", "seed": seed + i} | {name: v[i] for name, v in values.items()}
        for i in range(count)
    ]


BASE = [0.30, 0.50, 0.42, 0.61, 0.25, 0.33, 0.47, 0.56]  # mean 0.43


def test_clearly_better_worse_and_noise():
    better = _stats(BASE, [b + 0.1 + n for b, n in zip(BASE, NOISE, strict=True)])
    worse = _stats(BASE, [b - 0.1 + n for b, n in zip(BASE, NOISE, strict=True)])
    noise = _stats(BASE, [b + n for b, n in zip(BASE, NOISE, strict=True)])
    assert verdict(better) == "better" and verdict(worse) == "worse" and verdict(noise) == "within noise"
    assert verdict(better, higher_is_better=False) == "worse"  # a metric where lower is better
    assert verdict(better, higher_is_better=None) == "up" and verdict(worse, higher_is_better=None) == "down"
    assert verdict_line(better) == f"better: +0.1000 ({better['z']:.1f} SE; 8 prompts)"
    assert verdict_line(noise).startswith("within noise: ") and "; 8 prompts)" in verdict_line(noise)


def test_a_large_mean_change_with_a_larger_spread_is_noise():
    """The mean moved by 0.1, but one prompt carries it all: not beyond two standard errors of the pairs."""
    stats = _stats(BASE, [b + (0.8 if i == 0 else 0.0) for i, b in enumerate(BASE)])
    assert stats["diff"] == pytest.approx(0.1) and verdict(stats) == "within noise"


def test_too_few_prompts_and_nothing_measured_give_no_verdict():
    assert verdict_line(_stats([0.1], [0.9])) == "no verdict: +0.8000 (no spread; 1 prompt)"
    assert verdict_line(_stats([math.nan, math.nan], [0.1, 0.2])) == "no verdict: not measured"
    assert verdict(_stats([0.1, 0.2], [0.2, 0.3])) == "better"  # every prompt moved alike: no spread, z infinite


def test_evaluations_are_paired_by_prompt_and_seed():
    first = _rows({"red/score": BASE, "red/blue": BASE})
    last = _rows({"red/score": [b + 0.1 + n for b, n in zip(BASE, NOISE, strict=True)], "red/blue": BASE})[::-1]
    last.append({"prompt_id": 99, "prompt": "only later", "seed": 1, "red/score": 5.0, "red/blue": 5.0})
    last[0] = last[0] | {"seed": 12345}  # the same prompt drawn with another seed: not a pair
    comparison = compare_evaluations(first, last)
    assert comparison["red/score"]["n"] == 7 and comparison["red/score"]["verdict"] == "better"
    assert comparison["red/blue"]["verdict"] == "within noise"  # zero differences: no change
    assert compare_evaluations(first, _rows({"red/score": BASE}, seed=0)) == {}  # other seeds: nothing to pair


def test_reports_are_the_fit_evaluations_up_to_the_run_s_step(tmp_path):
    for stage, step in (("fit", 0), ("fit", 10), ("fit", 5), ("validate", 10), ("fit", 40)):
        (tmp_path / f"{stage}_step_{step:06d}.json").write_text(json.dumps({"stage": stage, "step": step}))
    assert [r["step"] for r in evaluation_reports(tmp_path, up_to_step=10)] == [0, 5, 10]


def _report(step: int, values: dict[str, list[float]]) -> dict:
    means = {name: sum(v) / len(v) for name, v in values.items()}
    return {"stage": "fit", "step": step, "num_videos": len(BASE), "metrics": means, "videos": _rows(values)}


def test_fit_end_prints_the_headline_and_writes_the_full_table(tmp_path):
    evaluations = tmp_path / "eval"
    evaluations.mkdir()
    base = {"red/score": BASE, "red/blue": BASE, "depth/score": BASE}
    trained = {
        "red/score": [b + 0.1 + n for b, n in zip(BASE, NOISE, strict=True)],
        "red/blue": [b - 0.2 for b in BASE],
        "depth/score": [b - 0.1 + n for b, n in zip(BASE, NOISE, strict=True)],
    }
    (evaluations / "fit_step_000000.json").write_text(json.dumps(_report(0, base)))
    (evaluations / "fit_step_000004.json").write_text(json.dumps(_report(4, trained)))
    summary = RunSummary(console=Console(record=True, width=200))
    summary.rewards, summary._kl = [(1, 0.25), (2, 0.5), (4, 0.375)], 0.002
    checkpoint = SimpleNamespace(last_model_path=str(tmp_path / "checkpoints" / "last.ckpt"))
    trainer = SimpleNamespace(log_dir=str(tmp_path), default_root_dir=str(tmp_path), checkpoint_callback=checkpoint)
    summary.on_fit_end(trainer, SimpleNamespace(steps_done=4))

    printed = summary.console.export_text()
    assert "world-r1 run summary" in printed and "0.2500 (step 1) -> 0.3750 (step 4)" in printed
    assert "best reward" in printed and "0.5000 (step 2)" in printed and "kl (last)" in printed
    assert "eval/red/score" in printed and "better: +0.1000" in printed and "8 prompts" in printed
    assert "eval/depth/score" in printed and "worse: -0.1000" in printed
    assert "red/blue" not in printed  # a detail: in the file only
    assert f"full summary: {tmp_path / 'summary.md'}" in printed.replace("\n", "")

    table = (tmp_path / "summary.md").read_text()
    assert "step 0 (base) vs step 4" in table
    assert re.search(r"^\| red/blue \| 0.43 \| 0.23 \| -0.2 \| [^|]+ \| 8 \| down \|$", table, re.MULTILINE)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["steps"] == 4 and written["reward"]["last"] == [4, 0.375] and written["kl"] == 0.002
    assert written["evaluation"]["first_step"] == 0 and written["evaluation"]["last_step"] == 4
    assert written["evaluation"]["metrics"]["red/score"]["verdict"] == "better"
    assert written["evaluation"]["metrics"]["depth/score"]["verdict"] == "worse"
    assert written["last_checkpoint"].endswith("last.ckpt")


def test_a_run_with_one_evaluation_shows_it_without_verdicts(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "fit_step_000003.json").write_text(json.dumps(_report(3, {"red/score": BASE})))
    summary = RunSummary(console=Console(record=True, width=200))
    trainer = SimpleNamespace(log_dir=str(tmp_path), default_root_dir=str(tmp_path), checkpoint_callback=None)
    summary.on_fit_end(trainer, SimpleNamespace(steps_done=3))
    printed = summary.console.export_text()
    assert "eval/red/score" in printed and "0.4300" in printed and "(base)" not in printed
    assert "Held-out evaluation at step 3 (8 videos)" in (tmp_path / "summary.md").read_text()
