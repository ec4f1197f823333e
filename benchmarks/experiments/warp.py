"""The camera warps measured: their CPU cost at the real size, and how well each makes the mini base follow its camera.

``python -m benchmarks.experiments.warp`` times World-R1's Go-with-the-Flow warp and the project's transport on one
video at 832x480x81 (latent 16 x 21 x 60 x 104) on this CPU, and renders the mini world's held-out prompts with the
shipped mini Wan (no training) under each camera conditioning: none, the transport from warped noise (the mini
config's), Go-with-the-Flow injected step-wise (the release's) and Go-with-the-Flow as the starting noise. Every video
is scored with the mini config's terms; the trajectory score and the motion ratio say whether the video moves as its
camera words ask, the inlier ratio whether it stays rigid. Paired by (prompt, seed) against no conditioning. Writes
``results/experiments/warp/default.{json,md}`` with the command line, the machine and the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import yaml
from rich.console import Console

from benchmarks.experiments.miniature import CONFIG, Evaluator, model_dir
from benchmarks.provenance import Variant, parse, write_result
from benchmarks.report import machine_line
from world_r1.camera import CameraConfig, camera_to_world, camera_trajectory, gwtf_noise, parse_camera, warped_noise
from world_r1.data import load_prompts
from world_r1.metrics import paired_difference

VARIANTS: dict[str, Variant] = {"default": Variant(note="the warps' cost at 832x480x81; the mini base under each")}
#: camera conditionings compared on the mini base: name -> edits of configs/mini.yaml's camera section
CONDITIONINGS: dict[str, dict] = {
    "none": {"enabled": False},
    "transport, initial (mini config)": {},
    "gwtf, stepwise (the release)": {"warp": "gwtf", "injection": "stepwise", "reinject_steps": 8, "plane_depth": 4.0},
    "gwtf, initial": {"warp": "gwtf", "injection": "initial", "plane_depth": 4.0},
}
KEYS = ("trajectory/score", "trajectory/motion_ratio", "epipolar/inlier_ratio", "motion/parallax_px")


def real_size_cost(camera: str = "Camera pan left, then push in.", repeats: int = 1) -> dict[str, float]:
    """Seconds per video of each warp at 832x480x81 (Wan 2.1's latent: 16 x 21 x 60 x 104, 4x temporal)."""
    shape, factor = (16, 21, 60, 104), 4
    plan = parse_camera(camera.removeprefix("Camera ").rstrip("."))
    out = {}
    start = time.perf_counter()
    for _ in range(repeats):
        poses = camera_to_world(camera_trajectory(plan, 81))
        gwtf_noise(poses, shape, factor, generator=torch.Generator().manual_seed(0))
    out["gwtf_s"] = (time.perf_counter() - start) / repeats
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    transport = CameraConfig(enabled=True, warp="transport", injection="initial")
    start = time.perf_counter()
    for _ in range(repeats):
        warped_noise(noise, camera, None, transport, factor, torch.Generator().manual_seed(0))
    out["transport_s"] = (time.perf_counter() - start) / repeats
    return out


def conditioning_effect(model: Path, seeds: int, console: Console) -> dict[str, dict]:
    """Per conditioning: the mean of each key and, against no conditioning, the paired change and its z."""
    base_config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    prompts = [record.text for record in load_prompts("builtin:mini_eval")]
    values: dict[str, dict[str, torch.Tensor]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, edits in CONDITIONINGS.items():
            config = json.loads(json.dumps(base_config))
            config["model"]["camera"] |= edits
            path = Path(folder) / "config.yaml"
            path.write_text(yaml.safe_dump(config), encoding="utf-8")
            console.print(f"[bold]{name}[/]")
            values[name] = Evaluator(path, model, prompts, list(range(seeds))).run(None, console)[0]
    plain = values["none"]
    out = {}
    for name, scores in values.items():
        row = {key: float(scores[key].float().nanmean()) for key in KEYS}
        if name != "none":
            row |= {f"{key} change": paired_difference(plain[key], scores[key]) for key in KEYS}
        out[name] = row
    return out


def markdown(results: dict) -> str:
    cost = results["cost"]
    lines = [
        "# The camera warps: cost at the real size, and the mini base's camera-following under each",
        "",
        f"Command: `{results['command']}`. {machine_line(results['machine'])}",
        "",
        f"One 832x480x81 video's warped noise on this CPU: Go-with-the-Flow (16x, 81 frames) {cost['gwtf_s']:.1f} s, "
        f"the transport {cost['transport_s']:.2f} s.",
        "",
        "| conditioning | trajectory | motion / camera's | inlier ratio | motion (px) |",
        "|---|---|---|---|---|",
    ]
    for name, row in results["mini"].items():
        cells = []
        for key in KEYS:
            change = row.get(f"{key} change")
            mean = f"{row[key]:.3f}"
            cells.append(mean if change is None else f"{mean} ({change['diff']:+.3f}, {change['z']:+.1f} SE)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "In brackets: the paired change from no conditioning over the same (prompt, seed) and its z."]
    return "\n".join(lines) + "\n"


def headline(results: dict) -> str:
    """The two warps' cost on one real-size video and the mini base's trajectory score under each."""
    cost = results["cost"]
    scores = ", ".join(f"{name} {row['trajectory/score']:.2f}" for name, row in results["mini"].items())
    return (
        f"Go-with-the-Flow {cost['gwtf_s']:.0f} s, transport {cost['transport_s']:.1f} s a video; trajectory {scores}"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments.warp", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:mini-wan", help="the mini base model")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per held-out prompt")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/experiments/warp/)")
    call = parse(parser, argv, VARIANTS, "experiments", "warp")
    args = call.args
    console = Console(width=120)
    provenance = call.provenance(VARIANTS)
    results = {"command": provenance["command"], "machine": provenance["machine"], "cost": real_size_cost()}
    console.print(results["cost"])
    results["mini"] = conditioning_effect(model_dir(args.model), args.seeds, console)
    results |= {"headline": headline(results), "provenance": provenance}
    write_result(args.out, results, markdown(results))
    console.print(markdown(results))
    return results


if __name__ == "__main__":
    main()
