"""``python -m benchmarks``: run every benchmark, print the tables, write ``benchmarks/results/{cpu,gpu}.json/.md``.

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

from benchmarks import gpu, report, rewards, rollout, scaling, training
from benchmarks.common import machine

RESULTS = Path(__file__).parent / "results"


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1, see above)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/cpu.json or gpu.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:
        pass
    console = Console(width=max(Console().width, 120))
    results: dict = {"machine": machine(), "benchmarks": {}, "seconds": {}}
    start = time.perf_counter()
    for name in args.only or BENCHMARKS:
        console.print(f"[bold]running {name}[/] ...")
        began = time.perf_counter()
        results["benchmarks"][name] = BENCHMARKS[name]()
        results["seconds"][name] = time.perf_counter() - began
    results["seconds"]["total"] = time.perf_counter() - start
    report.print_results(results, console)
    out = args.out or RESULTS / ("gpu.json" if torch.cuda.is_available() else "cpu.json")
    path = report.write_json(results, out)
    path.with_suffix(".md").write_text(report.markdown(results), encoding="utf-8")
    console.print(f"total {results['seconds']['total']:.0f} s; results written to {path} and {path.with_suffix('.md')}")
    return results


if __name__ == "__main__":
    main()
