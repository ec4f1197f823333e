"""``python -m benchmarks``: run every speed benchmark, print the tables, write ``results/speed/{cpu,gpu}/<variant>``.

On a shared CPU, several OpenMP threads per process fight for the cores and timings swing by 10x or more, so the
default is one thread for torch and OpenCV alike (``--threads`` to change it): every figure is a ratio between
methods run under the same setting, in the same process.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from rich.console import Console

from benchmarks import report
from benchmarks.provenance import Variant, parse, write_result
from benchmarks.speed import gpu, rewards, rollout, scaling, training

#: the committed speed results, by name: ``python -m benchmarks --variant NAME`` re-measures one
VARIANTS: dict[str, Variant] = {
    "default": Variant(note="every benchmark (results/speed/cpu/default: the rollout re-measured with Euler)"),
    "rewards": Variant(("--only", "rewards"), "the rewards alone, after the matching and corner-detector changes"),
}


def _gpu() -> dict:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device; on a GPU this times a Wan-1.3B-sized bf16 transformer at 832x480x81"}
    return gpu.run()


BENCHMARKS: dict[str, Callable[[], dict]] = {
    "rollout": rollout.run,
    "training": training.run,
    "rewards": rewards.run,
    "scaling": scaling.run,
    "gpu": _gpu,
}


def headline(results: dict) -> str:
    """The figures that have a goal, one clause each: what a reader of the index wants first."""
    clauses = [
        f"{label} {report.format_value(fig['value'], fig['unit'])} (goal {fig['goal']})"
        for result in results["benchmarks"].values()
        for label, fig in result.get("figures", {}).items()
        if "goal" in fig
    ]
    return "; ".join(clauses[:3]) or "no figure with a goal measured"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1, see above)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/speed/<device>/<variant>)")
    device = "gpu" if torch.cuda.is_available() else "cpu"
    run = parse(parser, argv, VARIANTS, "speed", device)
    args = run.args
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:
        pass
    console = Console(width=max(Console().width, 120))
    results: dict = {"provenance": run.provenance(VARIANTS), "benchmarks": {}, "seconds": {}}
    results["machine"] = results["provenance"]["machine"]  # where report.markdown reads it
    start = time.perf_counter()
    for name in args.only or BENCHMARKS:
        console.print(f"[bold]running {name}[/] ...")
        began = time.perf_counter()
        results["benchmarks"][name] = BENCHMARKS[name]()
        results["seconds"][name] = time.perf_counter() - began
    results["seconds"]["total"] = time.perf_counter() - start
    report.print_results(results, console)
    results["headline"] = headline(results)
    path = write_result(args.out, report.finite(results), report.markdown(results))
    console.print(f"total {results['seconds']['total']:.0f} s; results written to {path} and {path.with_suffix('.md')}")
    return results


if __name__ == "__main__":
    main()
