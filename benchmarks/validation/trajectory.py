"""Does the trajectory term score videos that follow their camera words high and those that do not low?

Checked on the layered photograph clips (:mod:`world_r1.synthetic.photos`), whose camera paths are known exactly:
every camera of :data:`~world_r1.synthetic.photos.CAMERAS` (every verb of the grammar, zoom included, and a chain),
at 0.5x, 1x and 2x speed, and at speed 1 with a 45 or 75 degree field of view, while the term assumes the configs'
camera model (60 degrees, :data:`~world_r1.camera.CLASSIC_MOTION`: 30 degree pans, 1 unit of travel), as it
must for real videos whose speed and lens are unknown. Each clip is scored against its own camera sentence, the
mirrored one (every direction reversed) and every other camera of the list. Per form of the term:

* **right**: the median score with the clip's own sentence (goal >= 0.5) and the share of clips whose estimated path
  goes the right way (travel, turning and zoom all in the intended direction; goal >= 80 %; read off the path the
  ``shape`` form estimates, so reported for it alone);
* **mirrored**: the median score with the mirrored sentence (goal < 0.2);
* **other**: the median score with the other cameras' sentences, and the share of clips that score their own sentence
  above every wrong one.

``python -m benchmarks.validation.trajectory [--variant corners]`` writes
``results/validation/trajectory/<variant>.{json,md}``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from benchmarks.provenance import Variant, parse, write_result
from world_r1.camera import CLASSIC_MOTION, parse_camera
from world_r1.geometry import DETECTORS, GeometrySettings, VideoGeometry, analyse
from world_r1.geometry.chain import PATH_ESTIMATORS
from world_r1.rewards.trajectory import PATH_ANCHORS, TRAJECTORY_FORMS, CameraTrajectoryReward, EstimatedPathReward
from world_r1.synthetic.photos import CAMERAS, photo_clip_specs, render_photo_clip

#: the committed results, by name (``--variant NAME``)
VARIANTS: dict[str, Variant] = {
    "default": Variant(note="SIFT, as the configs set it"),
    "corners": Variant(("--detector", "corners"), "the corner detector (reads a zoom as travel)"),
}
FORMS = ("shape", "path", "flow")
SPEEDS = (0.5, 1.0, 2.0)
FOVS = (45.0, 60.0, 75.0)
#: the real configs' shared analysis, with the pairs from frame 0 the path forms read
GEOMETRY = GeometrySettings(gaps=(0.1, 0.2), max_pairs=4, max_side=256, anchors=PATH_ANCHORS)
RIGHT_GOAL, DIRECTION_GOAL, WRONG_GOAL = 0.5, 0.8, 0.2


def mirrored(camera: str) -> str:
    """The camera sentence with every direction reversed."""
    return f"Camera {parse_camera(camera).mirrored().describe()}."


def _score(
    term: CameraTrajectoryReward, video: torch.Tensor, analysis: VideoGeometry, camera: str
) -> dict[str, torch.Tensor]:
    return term(video, [""], analysis=analysis, cameras=[camera])


def _pairs(term: CameraTrajectoryReward, geometry: GeometrySettings) -> str:
    """The keyframe pairing ``term`` reads: its path estimator's, or the analysis's own for the flow form."""
    return PATH_ESTIMATORS[term.path_estimator] if isinstance(term, EstimatedPathReward) else geometry.path_pairs


def score_clips(
    splits: Sequence[str] = ("tune", "held_out"),
    cameras: Sequence[str] = CAMERAS,
    speeds: Sequence[float] = SPEEDS,
    fovs: Sequence[float] = FOVS,
    forms: Sequence[str] = FORMS,
    geometry: GeometrySettings = GEOMETRY,
    console: Console | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Per form: ``right`` (N,) and ``mirrored`` (N,) scores, ``others`` (the scores with every other camera's
    sentence, flat), ``beats`` (N,) (the own sentence above every wrong one) and ``direction_right`` (N,) over the N
    clips (splits x cameras x speeds at 60 degrees, and x the other fields of view at speed 1), each analysed once.
    "Other" cameras are those whose plan differs. ``geometry`` is the analysis (the real configs' by default)."""
    terms = {form: TRAJECTORY_FORMS[form](motion=CLASSIC_MOTION) for form in forms}
    variants = [(speed, 60.0) for speed in speeds] + [(1.0, fov) for fov in fovs if fov != 60.0]
    specs = [
        replace(spec, speed=speed, fov_deg=fov)
        for split in splits
        for spec in photo_clip_specs(split, tuple(cameras))
        for speed, fov in variants
    ]
    out: dict[str, dict[str, list]] = {
        f: {"right": [], "mirrored": [], "others": [], "beats": [], "direction_right": []} for f in forms
    }
    with Progress(console=console, transient=True, disable=console is None) as progress:
        task = progress.add_task("scoring camera sentences", total=len(specs))
        for spec in specs:
            video = render_photo_clip(spec).video[None]
            analyses = {  # one analysis per pairing of the keyframes the path estimators read
                pairs: analyse(video, replace(geometry, path_pairs=pairs))
                for pairs in {_pairs(term, geometry) for term in terms.values()}
            }
            others = [c for c in cameras if parse_camera(c) != parse_camera(spec.camera)]
            for form, term in terms.items():
                analysis = analyses[_pairs(term, geometry)]
                own = _score(term, video, analysis, spec.camera)
                wrong = [float(_score(term, video, analysis, c)["score"]) for c in [mirrored(spec.camera), *others]]
                out[form]["right"].append(float(own["score"]))
                out[form]["mirrored"].append(wrong[0])
                out[form]["others"] += wrong[1:]
                out[form]["beats"].append(float(own["score"]) > max(wrong))
                if form == "shape":
                    ways = (own["direction"], own["turning"], own["zooming"])
                    out[form]["direction_right"].append(float(all(way > 0 for way in ways)))
            progress.advance(task)
    return {form: {key: torch.tensor(values) for key, values in entry.items()} for form, entry in out.items()}


def summarise(scores: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Medians, shares and whether the goals are met, per form."""
    summary = {}
    for form, entry in scores.items():
        right, wrong = entry["right"], entry["mirrored"]
        row = {
            "clips": len(right),
            "right_median": float(right.median()),
            "mirrored_median": float(wrong.median()),
            "others_median": float(entry["others"].median()),
            "right_beats_every_wrong": float(entry["beats"].float().mean()),
        }
        if len(entry["direction_right"]):
            row["direction_right"] = float(entry["direction_right"].mean())
        row["goals_met"] = row["right_median"] >= RIGHT_GOAL and row["mirrored_median"] < WRONG_GOAL
        if "direction_right" in row:
            row["goals_met"] = row["goals_met"] and row["direction_right"] >= DIRECTION_GOAL
        summary[form] = row
    return summary


def markdown(summary: dict[str, dict[str, float]], detector: str = "sift") -> str:
    """The summary as one Markdown table, the detector of the analysis in the title where it is not SIFT."""
    lines = [
        "# Trajectory term on photograph clips with known camera paths"
        + ("" if detector == "sift" else f" (geometry.detector: {detector})"),
        "",
        f"{next(iter(summary.values()))['clips']} clips: {len(CAMERAS)} cameras x 2 photograph splits x (speeds "
        f"{', '.join(f'{s:g}' for s in SPEEDS)} at 60 degrees, and fields of view "
        f"{', '.join(f'{f:g}' for f in FOVS if f != 60)} degrees at speed 1); the term assumes 60 degrees and the "
        "configs' motion scale. Goals: own sentence median >= 0.5, direction right >= 80 %,"
        " mirrored sentence median < 0.2.",
        "",
        "| form | own sentence (median) | direction right | mirrored (median) | other cameras (median) |"
        " own above every wrong | goals |",
        "|---|---|---|---|---|---|---|",
    ]
    for form, row in summary.items():
        direction = f"{row['direction_right']:.0%}" if "direction_right" in row else "-"
        lines.append(
            f"| `{form}` | {row['right_median']:.2f} | {direction} | {row['mirrored_median']:.2f} | "
            f"{row['others_median']:.2f} | {row['right_beats_every_wrong']:.0%} | "
            f"{('met' if 'direction_right' in row else 'medians met') if row['goals_met'] else 'missed'} |"
        )
    return "\n".join(lines) + "\n"


def headline(payload: dict) -> str:
    """Per form: the median with the own and with the mirrored sentence; and which forms meet every goal."""
    forms = payload.get("forms") or {name: payload[name] for name in FORMS if name in payload}
    medians = ", ".join(f"{name} {f['right_median']:.2f} / {f['mirrored_median']:.2f}" for name, f in forms.items())
    met = [name for name, f in forms.items() if f.get("goals_met")]
    return f"own / mirrored sentence median: {medians}; every goal met: {', '.join(met) or 'no form'}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.validation.trajectory", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default results/validation/trajectory/<variant>)"
    )
    parser.add_argument("--detector", choices=DETECTORS, default=GEOMETRY.detector, help="geometry.detector")
    run = parse(parser, None if argv is None else list(argv), VARIANTS, "validation", "trajectory")
    args = run.args
    console = Console()
    geometry = replace(GEOMETRY, detector=args.detector)
    summary = summarise(score_clips(geometry=geometry, console=console))
    payload = {"forms": summary}
    payload |= {
        "headline": headline(payload),
        "provenance": run.provenance(VARIANTS, vars(args) | {"geometry": geometry}),
    }
    text = markdown(summary, args.detector)
    write_result(args.out, payload, text)
    console.print(text)


if __name__ == "__main__":
    main()
