"""`python -m world_r1 evaluate --videos DIR`: 3D-consistency scores for any video files, from any model.

The same reward modules that train World-R1 measure the videos (one geometry core, two uses), so the numbers compare
a trained model with its base, or Wan with any other generator, on equal terms.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from world_r1.geometry import GeometrySettings, PerceptualDistance
from world_r1.geometry.path import CameraPath
from world_r1.geometry.pose import rotation_angle_deg
from world_r1.metrics import RewardTermMeans, score_terms
from world_r1.rewards import DepthConsistencyReward, EpipolarReward, Reward
from world_r1.video_io import VIDEO_SUFFIXES, read_video


@dataclass
class Evaluation:
    """Per-video ``rows`` (``file``, ``prompt``, ``score``, ``<term>/<key>``...) best first, the files that could
    not be scored as ``skipped`` (``file``, ``error``), and the ``means`` over the scored videos."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)


def default_terms(lpips: str | None = None) -> dict[str, Reward]:
    """Epipolar consistency and render-and-compare reprojection consistency (the change between frames a rigid
    re-rendering explains, with PSNR/SSIM and, given a perceptual backbone ``lpips``, LPIPS's form), with the rewards'
    defaults; pass ``terms`` (e.g. in a YAML ``--config``) for others. Both read one shared geometry analysis per
    video, so the second term costs little."""
    perceptual = PerceptualDistance(lpips) if lpips else None
    return {"epipolar": EpipolarReward(), "depth": DepthConsistencyReward(perceptual=perceptual)}


def read_prompts(path: Path) -> dict[str, str]:
    """``<file name>\\t<prompt>`` lines (what `sample` writes as ``prompts.txt``) -> {file name: prompt}."""
    lines = (line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line)
    return {name: text for name, text in lines}


#: the release's names of its reward terms: (term class, its output) -> name; the first configured one of each wins
RELEASE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("Release3DReward", "S_recon", "S_recon"),
    ("Release3DReward", "S_meta", "S_meta"),
    ("Release3DReward", "S_traj", "S_traj"),
    ("ReconstructionReward", "score", "S_recon"),
    ("ReleaseTrajectoryReward", "score", "S_traj"),
    ("HPSReward", "hps", "R_gen"),
)


def release_values(terms: dict[str, Reward], values: dict[str, torch.Tensor]) -> dict[str, float]:
    """The configured terms' raw values under the release's names (S_recon, S_meta, S_traj, R_gen) for the first video
    of ``values``. Only the release's trajectory formula is S_traj (the flow and shape terms are not)."""
    out: dict[str, float] = {}
    for kind, key, name in RELEASE_NAMES:
        for term_name, term in terms.items():
            if type(term).__name__ != kind or name in out or f"{term_name}/{key}" not in values:
                continue
            out[name] = float(values[f"{term_name}/{key}"][0])
    return out


def camera_path_rows(path: CameraPath) -> list[dict[str, Any]]:
    """A camera path as one row per keyframe: ``frame``, ``turning_deg`` and ``travel`` from frame 0 (travel in the
    unit of the path: the median depth of the first travelling step's points), ``moved`` (turn, travel or unknown)."""
    turning = rotation_angle_deg(path.rotations)
    rows = []
    for k in range(len(path.frames)):
        moved = "unknown" if not bool(path.known[k]) else "turn" if bool(path.rotation_only[k]) else "travel"
        rows.append(
            {
                "frame": int(path.frames[k]),
                "turning_deg": round(float(turning[k]), 2),
                "travel": round(float(path.centres[k].norm()), 4),
                "moved": moved,
            }
        )
    return rows


def score_video_files(
    files: list[Path],
    terms: dict[str, Reward],
    prompts: dict[str, str] | None = None,
    max_frames: int | None = None,
    device: str = "cpu",
    geometry: GeometrySettings | None = None,
) -> Evaluation:
    """Score each file on its own (sizes and lengths may differ), ranked by ``score``, the mean of the terms' scores.

    A file that cannot be decoded is reported in ``skipped`` and the rest are scored; a term that fails on one video
    scores it 0 and marks it degenerate (see :func:`~world_r1.metrics.score_terms`).
    """
    result, means = Evaluation(), RewardTermMeans()
    for term in terms.values():
        term.to(device)
    for path in files:
        try:
            video = read_video(path, max_frames).to(device)
        except ValueError as error:
            result.skipped.append({"file": path.name, "error": str(error)})
            continue
        prompt = (prompts or {}).get(path.name, "")
        values = score_terms(terms, video[None], [prompt], geometry=geometry)
        scores = torch.stack([values[f"{name}/score"] for name in terms]).mean(0)
        means.update(values)
        row = {"file": path.name, "prompt": prompt, "frames": video.shape[0], "score": float(scores[0])}
        row |= release_values(terms, values) | {name: float(value[0]) for name, value in values.items()}
        paths = [term.last_paths[0] for term in terms.values() if getattr(term, "last_paths", None)]
        if paths and paths[0] is not None:
            row["camera_path"] = camera_path_rows(paths[0])
        result.rows.append(row)
    result.rows.sort(key=lambda row: row["score"], reverse=True)
    if result.rows:
        result.means = {"score": sum(r["score"] for r in result.rows) / len(result.rows)} | means.compute()
    return result


def write_reports(result: Evaluation, out: Path) -> tuple[Path, Path]:
    """``<out>.json`` (rows, skipped, means) and ``<out>.csv`` (one row per scored video)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out.with_suffix(".json"), out.with_suffix(".csv")
    json_path.write_text(json.dumps(result.__dict__, indent=2) + "\n")
    columns = list(dict.fromkeys(key for row in result.rows for key in row))
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["rank", *columns])
        writer.writeheader()
        for rank, row in enumerate(result.rows, start=1):
            if "camera_path" in row:  # one cell: "frame:turning_deg/travel/moved" per keyframe
                cells = (f"{p['frame']}:{p['turning_deg']}/{p['travel']}/{p['moved']}" for p in row["camera_path"])
                row = row | {"camera_path": " ".join(cells)}
            writer.writerow({"rank": rank} | row)
    return json_path, csv_path


def render_table(result: Evaluation, all_columns: bool = False) -> Table:
    """The ranking as a rich table: one row per video and a mean row; the columns are the overall ``score`` and each
    term's score (fits an 80-column terminal), or with ``all_columns`` every metric the terms report."""
    keys = [key for key in dict.fromkeys(k for row in result.rows for k in row) if key not in ("file", "prompt")]
    keys = [key for key in keys if key != "camera_path"]
    release = [name for _, _, name in RELEASE_NAMES if name in keys]
    columns = keys if all_columns else [k for k in keys if k == "score" or k.endswith("/score") or k in release]
    title = "3D consistency: ranked by score, the mean of the terms' scores (higher is more consistent)"
    table = Table(title=title, title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("file", style="bold", overflow="fold")
    for column in columns:  # "epipolar/inlier_ratio" as two header lines keeps narrow terminals readable
        table.add_column(column.replace("/", "\n", 1), justify="right", overflow="fold")
    for rank, row in enumerate(result.rows, start=1):
        table.add_row(str(rank), row["file"], *(_fmt(row.get(column)) for column in columns))
    if result.means:
        table.add_row("", "mean", *(_fmt(result.means.get(c)) for c in columns), style="italic", end_section=True)
    return table


def render_paths(result: Evaluation) -> Table | None:
    """The estimated camera path of each video (the trajectory term's), turning in degrees and travel from frame 0
    per keyframe: what the S_traj score read; None when no term estimated one."""
    rows = [row for row in result.rows if row.get("camera_path")]
    if not rows:
        return None
    frames = [p["frame"] for p in rows[0]["camera_path"]]
    table = Table(title="estimated camera path: degrees turned / travel from frame 0 (? where unknown)")
    table.add_column("file", style="bold", overflow="fold")
    for frame in frames:
        table.add_column(f"frame {frame}", justify="right")
    for row in rows:
        cells = [
            f"{p['turning_deg']:.1f}/{p['travel']:.2f}" + ("?" if p["moved"] == "unknown" else "")
            for p in row["camera_path"]
        ]
        table.add_row(row["file"], *cells)
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def evaluate(
    videos: str,
    terms: dict[str, Reward] | None = None,
    out: str | None = None,
    prompts: str | None = None,
    max_frames: int | None = None,
    device: str = "cuda" if torch.cuda.is_available() else "cpu",
    geometry: GeometrySettings | None = None,
    all_columns: bool = False,
    lpips: str | None = None,
) -> Evaluation:
    """Score every video file in a folder with the 3D-consistency rewards; print a ranking, write JSON and CSV.

    Args:
        videos: folder of video files (mp4, mov, mkv, avi, webm, gif), read non-recursively.
        terms: name -> reward module (``class_path``/``init_args`` in YAML); default: :func:`default_terms`.
        out: report path without suffix (``.json`` and ``.csv`` are written); default ``<videos>/world_r1_eval``.
        prompts: ``<file name>\\t<prompt>`` lines for prompt-aware terms; default ``<videos>/prompts.txt`` if present
            (what `sample` writes).
        max_frames: read at most this many frames of each video.
        device: where the rewards run.
        geometry: how the videos are analysed (frame pairs as fractions of each clip, analysis size, features).
        all_columns: print every metric of every term, not only the scores (the JSON and CSV always hold them all).
        lpips: hub id or local folder of a convolutional ``transformers`` backbone (e.g. ``microsoft/resnet-50``):
            the default terms then also report ``depth/lpips``, LPIPS's form of re-rendered against real frames. With
            ``terms``, give the depth term a ``perceptual`` instead.

    Videos are ranked by ``score``, the mean of the terms' scores, each in [0, 1]; a term that finds no usable
    geometry in a video (``<term>/degenerate`` 1) scores it 0, so a static or unreadable clip ranks last.
    """
    if lpips and terms:
        raise ValueError("--lpips sets up the default terms; with --terms, give the depth term init_args.perceptual.")
    folder = Path(videos)
    if not folder.is_dir():
        raise FileNotFoundError(f"--videos {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
    prompt_file = Path(prompts) if prompts else folder / "prompts.txt"
    prompt_map = read_prompts(prompt_file) if prompt_file.is_file() else None
    console = Console()
    with console.status(f"scoring {len(files)} videos"):
        result = score_video_files(files, terms or default_terms(lpips), prompt_map, max_frames, device, geometry)
    for skipped in result.skipped:
        console.print(f"[red]skipped[/red] {skipped['file']}: {skipped['error']}", highlight=False)
    console.print(render_table(result, all_columns))
    paths = render_paths(result)
    if paths is not None:
        console.print(paths)
    json_path, csv_path = write_reports(result, Path(out) if out else folder / "world_r1_eval")
    console.print(f"{len(result.rows)} scored, {len(result.skipped)} skipped; written {json_path} and {csv_path}")
    return result
