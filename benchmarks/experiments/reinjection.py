"""Step-wise re-injection of the warped noise, measured on the mini Wan: held-out videos of the base model with the
initial noise warped only (``configs/mini.yaml``) against warped and re-injected (8 steps, strength 0.35, kernel 9),
the same noise on both sides, every 3D term paired by (prompt, seed).

``python -m benchmarks.experiments.reinjection [--model DIR] [--eval-seeds 3]`` writes
``results/experiments/reinjection/default.json``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from rich.console import Console

from benchmarks.experiments.miniature import CONFIG, ROOT, Evaluator, degenerate_as_nan
from benchmarks.provenance import Variant, parse, write_result
from world_r1.data import load_prompts
from world_r1.metrics import paired_difference

KEYS = ("epipolar/inlier_ratio", "epipolar/sampson_px", "trajectory/score", "motion/parallax_px", "sharpness")


VARIANTS: dict[str, Variant] = {"default": Variant(note="re-injection for 8 steps against none, on the mini base")}


def headline(changes: dict) -> str:
    """The paired change of each metric from no re-injection to 8 steps of it, in standard errors."""
    return "8 re-injection steps vs 0: " + ", ".join(f"{key} {stats['z']:+.1f} SE" for key, stats in changes.items())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.experiments.reinjection", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", type=Path, default=ROOT / "world_r1" / "assets" / "mini_wan")
    parser.add_argument("--eval-seeds", type=int, default=3, help="seeds per held-out prompt")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/experiments/reinjection/)")
    call = parse(parser, argv, VARIANTS, "experiments", "reinjection")
    args = call.args
    console = Console()
    prompts = [record.text for record in load_prompts("builtin:mini_eval")]
    values = {}
    with tempfile.TemporaryDirectory() as folder:
        for steps in (0, 8):
            config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
            config["model"]["camera"]["reinject_steps"] = steps
            path = Path(folder) / f"mini_reinject_{steps}.yaml"
            path.write_text(yaml.safe_dump(config), encoding="utf-8")
            console.print(f"[bold]re-injection steps {steps}[/]")
            evaluator = Evaluator(path, args.model.resolve(), prompts, list(range(args.eval_seeds)))
            values[steps] = degenerate_as_nan(evaluator.run(None, console)[0])
    changes = {key: paired_difference(values[0][key], values[8][key]) for key in KEYS if key in values[0]}
    results = {**changes, "headline": headline(changes), "provenance": call.provenance(VARIANTS)}
    write_result(args.out, results)
    for key, stats in changes.items():
        console.print(
            f"{key:24s} {stats['base']:8.3f} -> {stats['trained']:8.3f}  z = {stats['z']:+.2f} (n {stats['n']})"
        )
    return results


if __name__ == "__main__":
    main()
