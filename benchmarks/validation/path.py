"""Does the camera-path estimate read footage-like video right? The figures the trajectory term's path form rests on.

Checked on :mod:`world_r1.synthetic.footage` clips (continuous depth, an unknown lens with distortion, moving
subjects, JPEG compression, the release's camera path over 81 frames), whose true paths are known. For each path
estimator (``anchored``: pairs of frame 0 with 8 frames; ``chained``: consecutive keyframes with model selection, the
default) and each clip, the estimated path at the keyframes is scored with the release's S_traj against the clip's own
camera sentence and against the mirrored one (every direction reversed), and read directly:

* **travel turning**: on clips whose camera only travels (push in, pull out, move left/right), the estimate's total
  turning in degrees (goal: median < 5);
* **pans read as turns**: on pan-only clips, the share whose estimated turning is within a factor 1.5 of the truth
  and whose estimated travel is small against the estimated depth of the scene (< 5 % of the median depth);
* **orbits**: on orbit-only clips, the share whose estimated turning is within a factor 1.5 of the truth and whose
  travel goes the right way (cosine of the centre sequences > 0.5);
* **anchors to the end**: the share of clips whose last keyframe is reconstructed;
* **S_traj**: the median score with the true sentence (goal >= 0.7; a perfect estimate scores 1.0) and the share of
  clips whose true sentence scores above the mirrored one (goal >= 90 %).

``python -m benchmarks.validation.path`` writes ``results/validation/path/default.{json,md}``; clips are rendered
once into ``.cache/world_r1/footage`` (about a minute each on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
from dataclasses import asdict, replace
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from benchmarks.provenance import Variant, parse, write_result
from world_r1.camera import MotionScale, plan_for_prompt
from world_r1.camera.trajectory import camera_to_world, camera_trajectory
from world_r1.geometry import GeometrySettings, analyse, intrinsics_from_fov
from world_r1.geometry.chain import PATH_ESTIMATORS, path_of
from world_r1.geometry.path import CameraPath
from world_r1.geometry.pose import rotation_angle_deg
from world_r1.rewards import PathShapeReward, WeightedReward
from world_r1.rewards.path_scores import release_trajectory_score
from world_r1.synthetic.footage import FOOTAGE_CAMERAS, Footage, FootageSpec, footage_specs, render_footage

VARIANTS: dict[str, Variant] = {"default": Variant(note="both splits, every estimator")}
CACHE = Path(".cache/world_r1/footage")
#: the real configs' shared analysis (configs/wan21.yaml)
GEOMETRY = GeometrySettings(gaps=(0.1, 0.2), max_pairs=4, max_side=256, anchors=8)
ASSUMED_FOV = 60.0
TRAVEL_GOAL, SCORE_GOAL, MIRROR_GOAL = 5.0, 0.7, 0.9
#: the rows of the shape form's own scores on each estimate ("shape form (chained)", ...), scored free of scale
SHAPE = "shape form"


def cached_footage(spec: FootageSpec) -> Footage:
    """The clip of ``spec``, rendered once and kept as 8-bit frames under :data:`CACHE`."""
    key = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:16]
    path = CACHE / f"{key}.pt"
    if path.is_file():
        saved = torch.load(path)
        return Footage(saved["video"].float() / 255, saved["poses"], saved["intrinsics"], spec)
    clip = render_footage(spec)
    CACHE.mkdir(parents=True, exist_ok=True)
    video = (clip.video * 255).round().to(torch.uint8)
    torch.save({"video": video, "poses": clip.poses, "intrinsics": clip.intrinsics}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return Footage(video.float() / 255, clip.poses, clip.intrinsics, spec)


def mirrored(camera: str) -> str:
    """The camera sentence with every direction reversed, in the release's phrases."""
    swaps = {"left": "right", "right": "left", "push in": "pull out", "pull out": "push in"}
    words = camera
    for old, new in swaps.items():
        words = words.replace(old, "\0" + new.upper())
    return words.replace("\0", "").replace("RIGHT", "right").replace("LEFT", "left").replace("PULL OUT", "pull out")


def _turning(rotations: torch.Tensor) -> float:
    """Total geodesic turning (degrees) between consecutive rotations (N, 3, 3)."""
    return float(rotation_angle_deg(rotations[1:] @ rotations[:-1].transpose(1, 2)).sum())


def _score(path: CameraPath, camera: str, num_frames: int, motion: MotionScale) -> float:
    """The release's S_traj of the estimated path against ``camera``'s path at the same keyframes."""
    frames = torch.cat([torch.zeros(1, dtype=torch.long), path.frames[path.known]])
    target = camera_to_world(camera_trajectory(plan_for_prompt(camera), num_frames, motion).double())[frames]
    estimated = torch.eye(4, dtype=torch.float64).repeat(len(frames), 1, 1)
    estimated[1:, :3, :3] = path.rotations[path.known].transpose(1, 2)
    estimated[1:, :3, 3] = path.centres[path.known]
    return release_trajectory_score(estimated, target, steps=num_frames - 1)["score"]


def measure_clip(clip: Footage, estimator: str, motion: MotionScale) -> dict[str, float | str | bool]:
    """One clip's figures under ``estimator``."""
    video = clip.video[None]
    analysis = analyse(video, replace(GEOMETRY, path_pairs=PATH_ESTIMATORS[estimator]))
    intrinsics = intrinsics_from_fov(ASSUMED_FOV, *analysis.size)
    path = path_of(estimator, analysis, 0, intrinsics)
    camera, frames = clip.spec.camera, clip.video.shape[0]
    true_world = camera_to_world(clip.poses.double())
    keyframes = path.frames
    true_turning = _turning(torch.cat([torch.eye(3)[None].double(), true_world[keyframes, :3, :3]]).transpose(1, 2))
    known = path.known
    rotations = torch.cat([torch.eye(3, dtype=torch.float64)[None], path.rotations[known]])
    centres = torch.cat([torch.zeros(1, 3, dtype=torch.float64), path.centres[known]])
    true_centres = torch.cat([torch.zeros(1, 3, dtype=torch.float64), true_world[keyframes[known], :3, 3]])
    travel = float((centres[1:] - centres[:-1]).norm(dim=1).sum())
    norm = float(centres.norm() * true_centres.norm())
    cosine = float((centres * true_centres).sum()) / norm if norm > 1e-12 else 0.0
    right, wrong = _score(path, camera, frames, motion), _score(path, mirrored(camera), frames, motion)
    return {
        "camera": camera,
        "turning_deg": _turning(rotations),
        "true_turning_deg": true_turning,
        "travel": travel,  # in the estimate's unit: the median depth of the first travelling keyframe's points
        "direction_cosine": cosine,
        "known": float(known.float().mean()),
        "last_known": bool(known[-1]),
        "score": right,
        "mirrored_score": wrong,
    }


def shape_form(clip: Footage, term: WeightedReward) -> dict[str, float | str]:
    """The shape form's scores (free of scale: 0 for the opposite camera) of one clip with its own
    and the mirrored sentence: does the form credit the camera the clip follows?"""
    camera = clip.spec.camera
    scores = term(clip.video[None].repeat(2, 1, 1, 1, 1), ["", ""], cameras=[camera, mirrored(camera)])["trajectory"]
    return {"camera": camera, "score": float(scores[0]), "mirrored_score": float(scores[1])}


def summarise(rows: list[dict]) -> dict[str, float]:
    """The headline figures of one estimator's rows (module docstring)."""

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def kind(row: dict) -> str:
        words = row["camera"].lower()
        single = words.count(",") == 0
        if single and ("push" in words or "pull" in words or "move" in words):
            return "travel"
        return "pan" if single and "pan" in words else "orbit" if single and "orbit" in words else "chain"

    def within(row: dict, factor: float = 1.5) -> bool:
        truth = max(row["true_turning_deg"], 1e-6)
        return 1 / factor <= row["turning_deg"] / truth <= factor

    scores = {
        "clips": len(rows),
        "score_median": median([r["score"] for r in rows]),
        "true_beats_mirrored": sum(r["score"] > r["mirrored_score"] for r in rows) / len(rows),
    }
    if "turning_deg" not in rows[0]:  # a form's scores only (the shape form): no path to read
        return scores
    travel = [r for r in rows if kind(r) == "travel"]
    pans = [r for r in rows if kind(r) == "pan"]
    orbits = [r for r in rows if kind(r) == "orbit"]
    return scores | {
        "travel_turning_median_deg": median([r["turning_deg"] for r in travel]),
        "pans_read_as_turns": sum(within(r) and r["travel"] < 0.05 for r in pans) / max(len(pans), 1),
        "orbits_turn_and_travel": sum(within(r) and r["direction_cosine"] > 0.5 for r in orbits) / max(len(orbits), 1),
        "last_anchor_known": sum(r["last_known"] for r in rows) / len(rows),
        "known_share": statistics.mean(r["known"] for r in rows),
    }


def run(splits: tuple[str, ...], estimators: tuple[str, ...], console: Console | None = None) -> dict:
    """Figures per split and estimator, with every clip's row."""
    motion = MotionScale()
    out: dict = {}
    specs = [(split, spec) for split in splits for spec in footage_specs(split, FOOTAGE_CAMERAS)]
    shapes = {  # the shape form on each estimate, in the composite as the configs run it
        f"{SHAPE} ({estimator})": WeightedReward(
            {"trajectory": PathShapeReward(motion=motion, path_estimator=estimator)},
            geometry=replace(GEOMETRY, path_pairs=PATH_ESTIMATORS[estimator]),
        )
        for estimator in estimators
    }
    rows: dict[str, dict[str, list]] = {s: {e: [] for e in (*estimators, *shapes)} for s in splits}
    with Progress(console=console, transient=True, disable=console is None) as progress:
        task = progress.add_task("footage clips", total=len(specs))
        for split, spec in specs:
            clip = cached_footage(spec)
            for estimator in estimators:
                rows[split][estimator].append(measure_clip(clip, estimator, motion))
            for name, shape in shapes.items():
                rows[split][name].append(shape_form(clip, shape))
            progress.advance(task)
    for split in splits:
        out[split] = {e: {"summary": summarise(rows[split][e]), "clips": rows[split][e]} for e in rows[split]}
    return out


def markdown(results: dict) -> str:
    """The headline table of :func:`run`'s results."""
    lines = [
        "# Camera-path estimates on footage-like clips",
        "",
        "| split | estimator | travel turning (median deg, goal < 5) | pans read as turns | orbits turn + travel "
        "| last anchor known | S_traj median (goal >= 0.7) | true > mirrored (goal >= 90 %) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split, by_estimator in results["splits"].items():
        for estimator, result in by_estimator.items():
            s = result["summary"]
            path = (
                f"{s['travel_turning_median_deg']:.1f} | {s['pans_read_as_turns']:.0%} "
                f"| {s['orbits_turn_and_travel']:.0%} | {s['last_anchor_known']:.0%}"
                if "travel_turning_median_deg" in s
                else "- | - | - | -"
            )
            lines.append(
                f"| {split} | {estimator} | {path} | {s['score_median']:.2f} | {s['true_beats_mirrored']:.0%} |"
            )
    clips = next(iter(next(iter(results["splits"].values())).values()))["summary"]["clips"]
    lines += [
        "",
        f"Clips per split: {clips} (the release's eight single movements and six chains of two or three). The "
        "estimators' S_traj is the release's formula on the estimated keyframe path; the shape form's is its own score "
        "(free of scale; 0 for the opposite camera) on each estimate.",
    ]
    return "\n".join(lines) + "\n"


def headline(results: dict) -> str:
    """Per split, each estimate's S_traj median and how often the true camera scores above the mirrored one."""
    parts = []
    for split, by_estimator in results["splits"].items():
        cells = [
            f"{name} {r['summary']['score_median']:.2f} ({r['summary']['true_beats_mirrored']:.0%})"
            for name, r in by_estimator.items()
        ]
        parts.append(f"{split}: " + ", ".join(cells))
    return "S_traj median (true camera above mirrored) " + "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation.path", description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=["tune", "held_out"], choices=["tune", "held_out"])
    parser.add_argument("--estimators", nargs="+", default=list(PATH_ESTIMATORS), choices=list(PATH_ESTIMATORS))
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/validation/path/<variant>)")
    call = parse(parser, argv, VARIANTS, "validation", "path")
    args = call.args
    console = Console(stderr=True)
    results: dict = {"splits": run(tuple(args.splits), tuple(args.estimators), console)}
    results |= {
        "headline": headline(results),
        "provenance": call.provenance(VARIANTS, vars(args) | {"geometry": GEOMETRY}),
    }
    write_result(args.out, results, markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
