"""The real-size Wan 2.1 on this machine: step time, peak memory and file sizes, as a committed result.

``python -m benchmarks.speed.realsize`` runs :func:`world_r1.commands.smoke.smoke` (the real 1.3B architecture with
random weights, built offline and loaded through the hub-model code path; two Flow-GRPO steps; checkpoint and LoRA
written; the LoRA reloaded into plain diffusers and the velocities compared) and writes its figures with their
provenance to ``results/speed/realsize/<variant>.{json,md}``. The default variant is CPU-sized (64x64x9, about 4
minutes on 2 cores); ``--variant gpu`` is the real video size, for a machine with a GPU.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.provenance import Variant, parse, write_result

VARIANTS: dict[str, Variant] = {
    "default": Variant(note="Wan 2.1 1.3B architecture, random weights, 64x64x9, 2 steps: sizes and CPU step time"),
    "gpu": Variant(
        ("--height", "480", "--width", "832", "--num-frames", "81"),
        note="the real video size: peak GPU memory against the documented estimate (needs a GPU)",
    ),
}


def headline(figures: dict[str, float]) -> str:
    """The figures a reader checks first: parameters, step time, peak memory, file sizes, diffusers agreement."""
    return (
        f"{figures['transformer parameters (B)']:.3f} B parameters; LoRA {figures['LoRA parameters (M)']:.1f} M, "
        f"file {figures['LoRA file (MB)']:.0f} MB, checkpoint {figures['checkpoint (MB)']:.0f} MB; "
        f"step {figures['later step seconds']:.0f} s, peak {figures['peak memory (GB)']:.1f} GB; "
        f"velocity vs plain diffusers {figures['velocity: policy vs plain diffusers + LoRA (relative)']:.1e}"
    )


def markdown(results: dict) -> str:
    settings = results["provenance"]["settings"]
    lines = [
        f"# Wan 2.1 {settings['size']} at its real size, random weights, "
        f"{settings['width']}x{settings['height']}x{settings['num_frames']}",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.4g} |" for name, value in results["figures"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed.realsize", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1.3b", choices=["1.3b", "14b"], help="the Wan 2.1 transformer size")
    parser.add_argument("--height", type=int, default=64, help="video height (480 for the real size)")
    parser.add_argument("--width", type=int, default=64, help="video width (832 for the real size)")
    parser.add_argument("--num-frames", type=int, default=9, help="frames, 4k+1 (81 for the real size)")
    parser.add_argument("--steps", type=int, default=2, help="Flow-GRPO steps")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/speed/realsize/)")
    call = parse(parser, argv, VARIANTS, "speed", "realsize")
    args = call.args
    from world_r1.commands.smoke import smoke  # the model code only when it runs

    figures = smoke(args.size, args.height, args.width, args.num_frames, args.steps)
    results = {"figures": figures, "provenance": call.provenance(VARIANTS)}
    results["headline"] = headline(figures)
    write_result(args.out, results, markdown(results))
    return results


if __name__ == "__main__":
    main()
