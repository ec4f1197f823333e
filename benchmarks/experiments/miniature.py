"""World-R1 in miniature, measured: Flow-GRPO with the 3D rewards against the mini Wan it starts from.

``python -m benchmarks.experiments.miniature`` trains ``configs/mini.yaml`` once per training seed and per ablation
(each run in its own folder and process, exactly as ``python -m world_r1 fit`` runs it), then renders the held-out
prompts of the mini world for several evaluation seeds with the base model and with each run's EMA LoRA (ODE sampling,
the same initial noise on both sides) and scores every video with the 3D terms. Every figure is paired by (prompt,
seed): ``z`` is the mean trained-minus-base difference over its standard error. Writes
``results/experiments/miniature/<variant>.{json,md,png}`` (held-out score against step; frame strips); ``--variant
NAME`` re-makes one committed result (:data:`VARIANTS`).

"Consistent" is decided by the epipolar inlier ratio against a threshold calibrated on ground-truth renders of the same
held-out prompts (the renderer knows which clips are rigid): the share of the base model's videos above it is its
measured mix of consistent and inconsistent videos.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
import yaml
from rich.console import Console

from benchmarks.provenance import ROOT, Variant, parse, shown_path, write_result
from benchmarks.report import machine_line
from world_r1.data import load_prompts
from world_r1.metrics import paired_difference, score_terms
from world_r1.policy.loading import BUILTIN_MODELS
from world_r1.policy.vae import encode_posterior_mean
from world_r1.pretrain.manifest import MANIFEST_NAME, read_manifest
from world_r1.pretrain.module import vae_input

CONFIG = ROOT / "configs" / "mini.yaml"

# What the table reports: (column, score_terms key, direction: +1 higher is better, -1 lower is better, 0 neither).
METRICS: tuple[tuple[str, str, int], ...] = (
    ("epipolar inlier ratio", "epipolar/inlier_ratio", 1),
    ("Sampson error (px)", "epipolar/sampson_px", -1),
    ("reprojection PSNR (dB)", "depth/psnr", 1),
    ("reprojection SSIM", "depth/ssim", 1),
    ("trajectory score", "trajectory/score", 1),
    ("consistent share", "consistent", 1),
    ("valid geometry share", "epipolar/valid", 1),
    ("motion (px)", "motion/parallax_px", 0),
    ("motion / camera's", "trajectory/motion_ratio", 0),
    ("frozen share", "frozen", -1),
    ("sharpness", "sharpness", 0),
)
THREE_D = ("epipolar/inlier_ratio", "epipolar/sampson_px", "depth/psnr", "depth/ssim", "trajectory/score")
FROZEN_RATIO = 0.5  # a video moving less than half of what its camera words induce counts as frozen


@dataclass(frozen=True)
class Edit:
    """A training run: ``configs/mini.yaml`` edited by ``edit`` (the paper's ablations switch one thing off)."""

    name: str
    description: str
    edit: Callable[[dict], None]


def _noise_warping_off(config: dict) -> None:
    config["model"]["camera"]["enabled"] = False


def _decoupled_off(config: dict) -> None:
    config["data"]["decoupled_steps"] = 0


def _without(term: str) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        config["model"]["reward"]["weights"][term] = 0.0  # weight 0: not even computed in the main phase

    return edit


def _alone(term: str) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        weights = config["model"]["reward"]["weights"]
        weights.update({other: 0.0 for other in weights if other != term})
        config["data"]["decoupled_steps"] = 0  # the motion-only steps would add a second reward

    return edit


def _motion_controlled(config: dict) -> None:
    config["model"]["grpo"]["control_covariate"] = "epipolar/parallax_px"  # consistency compared at equal motion


def _low_noise(config: dict) -> None:
    config["model"]["sampling"]["noise_level"] = 0.3  # a probe: fewer of the window's videos degenerate (6 % vs 25 %)


def _small_step(config: dict) -> None:
    config["model"]["grpo"]["lr"] = 5.0e-4  # on one prompt, 2e-3 lowered the reward it trained on; 5e-4 raised it


def _full_sde(config: dict) -> None:
    config["model"]["sampling"]["sde_window"] = 0  # full Flow-GRPO: every step an SDE step and trained (5x the window)


def _release_step(config: dict) -> None:
    """World-R1's released step scaled to the mini model: deterministic UniPC rollouts with the first half of the
    transitions trained, 2 videos per prompt (4 prompts a step: the shipped 8 videos), and the release's camera:
    Go-with-the-Flow over a plane 4 world units ahead (where the objects stand), injected step-wise."""
    model = config["model"]
    model["sampling"] |= {"rollout": "unipc", "timestep_fraction": 0.5}
    model["camera"] |= {"warp": "gwtf", "injection": "stepwise", "reinject_steps": 8, "plane_depth": 4.0}
    config["data"] |= {"group_size": 2, "prompts_per_step": 4}


TERMS = ("epipolar", "depth", "trajectory", "motion")  # the reward terms of configs/mini.yaml
EDITS: dict[str, Edit] = {
    edit.name: edit
    for edit in (
        Edit("world-r1", "configs/mini.yaml as shipped", lambda config: None),
        Edit("no-noise-warping", "initial noise not warped along the camera path", _noise_warping_off),
        Edit("no-decoupled-phase", "main phase only (no motion-only steps)", _decoupled_off),
        *(Edit(f"no-{term}", f"{term} term removed from the main reward", _without(term)) for term in TERMS),
        # not the paper's ablations: what each term teaches on its own (run only when named)
        *(Edit(f"only-{term}", f"{term} term alone, no decoupled phase", _alone(term)) for term in TERMS),
        Edit("motion-controlled", "epipolar and depth compared at equal motion", _motion_controlled),
        Edit("low-noise", "SDE window at noise level 0.3 (shipped: 0.7)", _low_noise),
        Edit("small-step", "learning rate 5e-4 (shipped: 2e-3)", _small_step),
        Edit("full-sde", "every denoising step an SDE step and trained (shipped: a window of 2)", _full_sde),
        Edit("release-step", "World-R1's released step: UniPC, first half trained, 2 per prompt", _release_step),
    )
}
PAPER_ABLATIONS = [name for name in EDITS if name.startswith("no-")]

_BASES = "--seeds", "--ablations"  # no training run: the base and its references only
#: the committed results, by name: ``--variant NAME`` re-makes one (``requires``: build its base model first)
VARIANTS: dict[str, Variant] = {
    "default": Variant(note="3 training seeds of configs/mini.yaml and the paper's 6 ablations"),
    "release_step": Variant(("--edit", "release-step", "--ablations"), "World-R1's released step, 3 seeds"),
    "only_epipolar": Variant(("--seeds", "--ablations", "only-epipolar"), "the epipolar term alone, seed 0"),
    "only_epipolar_150steps": Variant(
        ("--seeds", "--ablations", "only-epipolar", "--steps", "150"), "the epipolar term alone, 150 steps"
    ),
    "full_sde": Variant(("--seeds", "--ablations", "full-sde"), "every step an SDE step and trained, seed 0"),
    "full_sde_90steps": Variant(("--seeds", "--ablations", "full-sde", "--steps", "90"), "full-sde for 90 steps"),
    "motion_controlled": Variant(("--seeds", "--ablations", "motion-controlled"), "consistency at equal motion"),
    "noise_and_step": Variant(("--seeds", "--ablations", "low-noise", "small-step"), "window noise 0.3; lr 5e-4"),
    "retrained_base": Variant(
        ("--model", ".cache/world_r1/mini-wan", *_BASES),
        "the base as make mini-model re-trains it",
        requires=("make mini-model",),
    ),
    "pretrained_5000_steps": Variant(
        ("--model", ".cache/world_r1/mini-wan-5000", "--seeds", "0", "--ablations", "--workdir", "runs/miniature_5000"),
        "the shipped transformer's pre-training continued to 5,000 steps",
        requires=(
            "make mini-model",
            "python -m world_r1 pretrain --config runs/mini_base/version_0/config.yaml "
            "--trainer.max_steps 5000 --ckpt_path runs/mini_base/version_0/checkpoints/last.ckpt "
            "--model.output_dir .cache/world_r1/mini-wan-5000",
        ),
    ),
    "wide_transformer": Variant(
        ("--model", ".cache/world_r1/mini-wan-wide", "--seeds", "0", "--ablations", "--workdir", "runs/miniature_wide"),
        "a transformer 3.2 times as large on the shipped VAE",
        requires=(
            "python -m benchmarks.experiments.fresh_transformer --layers 6 --heads 6 --ffn-dim 768 "
            "--out .cache/world_r1/mini-wide-start",
            "python -m world_r1 pretrain --config configs/mini_base.yaml --model.model .cache/world_r1/mini-wide-start "
            "--model.output_dir .cache/world_r1/mini-wan-wide --trainer.default_root_dir runs/mini_wide",
        ),
    ),
    "rigid_data": Variant(
        ("--model", ".cache/world_r1/mini-wan-rigid", *_BASES, "--workdir", "runs/miniature_rigid"),
        "the shipped transformer's start pre-trained on rigid clips only",
        requires=(
            "python -m benchmarks.experiments.fresh_transformer --layers 4 --heads 4 --ffn-dim 512 "
            "--out .cache/world_r1/mini-rigid-start",
            "python -m world_r1 pretrain --config configs/mini_base.yaml "
            "--model.model .cache/world_r1/mini-rigid-start --model.output_dir .cache/world_r1/mini-wan-rigid "
            "--trainer.default_root_dir runs/mini_rigid "
            "--data.train.init_args.config.inconsistent_share 0.0",
        ),
    ),
}


# ------------------------------------------------------------------------------------------------- training
def train(
    variant: Edit, seed: int, model: Path, steps: int | None, workdir: Path, console: Console, base: Path = CONFIG
) -> Path:
    """Run ``fit`` for one variant of the ``base`` config and training seed in ``workdir`` (a fresh process); returns
    its log folder.

    A finished run of the same config in ``workdir`` is reused, so an interrupted benchmark picks up where it stopped.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(base.read_text(encoding="utf-8"))
    variant.edit(config)
    config["seed_everything"] = seed
    config["model"]["seed"] = seed
    config["data"]["seed"] = seed
    config["model"]["policy"]["model"] = str(model)
    if steps is not None:
        config["trainer"]["max_steps"] = steps
    text = yaml.safe_dump(config, sort_keys=False)
    done = sorted((workdir / "runs" / "mini").glob("version_*/lora/pytorch_lora_weights.safetensors"))
    previous = workdir / "config.yaml"
    if done and previous.is_file() and previous.read_text(encoding="utf-8") == text:
        console.print(f"[bold]{variant.name} seed {seed}[/]: reusing the finished run in {workdir}")
        return done[-1].parents[1]
    previous.write_text(text, encoding="utf-8")
    log = workdir / "fit.log"
    console.print(f"[bold]training {variant.name} seed {seed}[/] -> {workdir} (log: {log})")
    command = [sys.executable, "-m", "world_r1", "fit", "--config", "config.yaml"]
    with log.open("w") as out:
        subprocess.run(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, check=True)
    return sorted((workdir / "runs" / "mini").glob("version_*"))[-1]


# ----------------------------------------------------------------------------------------------- evaluation
def sharpness(videos: torch.Tensor) -> torch.Tensor:
    """Mean absolute Laplacian of the grey frames, per video: falls when a model's images blur or collapse."""
    grey = videos.float().mean(dim=2).flatten(0, 1)[:, None]  # (B * F, 1, H, W)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    response = torch.nn.functional.conv2d(grey, kernel).abs().mean(dim=(1, 2, 3))
    return response.view(videos.shape[0], videos.shape[1]).mean(dim=1)


class Evaluator:
    """Renders and scores held-out (prompt, seed) pairs with the base model or a LoRA, under one run's config.

    Seed ``s`` of prompt ``p`` is the initial noise ``1000 s + p`` (warped along the prompt's camera when the run's
    config warps noise): the base model and every trained model see the same noise for the same pair.
    """

    def __init__(self, config: Path, model: Path, prompts: list[str], seeds: list[int], batch_size: int = 10):
        from world_r1.cli import WorldR1CLI

        cli = WorldR1CLI(args=["--config", str(config), f"--model.policy.model={model}"], run=False)
        self.module = cli.model
        self.module.configure_model()
        self.module.eval()
        self.terms = dict(self.module.reward.terms)
        self.geometry = self.module.reward.geometry
        self.config, self.seeds = config, seeds
        self.pairs = [(p, s) for s in seeds for p in range(len(prompts))]
        self.prompts = prompts
        self.batch_size = batch_size
        self.group_size: int = cli.datamodule.group_size  # the run's rollouts per prompt in a training step

    @torch.no_grad()
    def score(self, videos: torch.Tensor, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Raw scores of the 3D terms (and sharpness) for videos ``(B, F, 3, H, W)`` in [0, 1] of ``prompts``."""
        columns: dict[str, list[torch.Tensor]] = {}
        for start in range(0, len(videos), self.batch_size):
            part, text = videos[start : start + self.batch_size].float(), prompts[start : start + self.batch_size]
            values = score_terms(self.terms, part, text, geometry=self.geometry)
            values["sharpness"] = sharpness(part)
            for key, value in values.items():
                columns.setdefault(key, []).append(value.float().cpu())
        return {key: torch.cat(value) for key, value in columns.items()}

    @torch.no_grad()
    def run(
        self, lora: Path | None, console: Console, keep: list[int] | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Every pair's raw scores (``{key: (N,)}``) and the videos of the pairs listed in ``keep``."""
        if lora is not None:
            self.module.policy.load_lora(lora)
        columns: dict[str, list[torch.Tensor]] = {}
        kept: dict[int, torch.Tensor] = {}
        for start in range(0, len(self.pairs), self.batch_size):
            part = self.pairs[start : start + self.batch_size]
            prompts = [self.prompts[p] for p, _ in part]
            seeds = [1000 * s + p for p, s in part]
            videos = self.module.sampler.generate(prompts, seeds)
            for key, value in self.score(videos, prompts).items():
                columns.setdefault(key, []).append(value)
            kept |= {i: videos[i - start].cpu() for i in keep or [] if start <= i < start + len(part)}
            console.print(f"  scored {start + len(part)}/{len(self.pairs)} videos")
        strips = torch.stack([kept[i] for i in keep]) if keep else None
        return {key: torch.cat(value) for key, value in columns.items()}, strips

    @torch.no_grad()
    def round_trip(self, videos: torch.Tensor) -> torch.Tensor:
        """``videos`` (B, F, 3, H, W) in [0, 1] encoded and decoded by the model's VAE: what the VAE alone keeps."""
        policy = self.module.policy
        dtype = next(policy.vae.parameters()).dtype
        latents = [
            encode_posterior_mean(policy.vae, vae_input(part, policy.latents_std.device, dtype))
            for part in videos.split(self.batch_size)
        ]
        normalised = (torch.cat(latents) - policy.latents_mean) / policy.latents_std
        return policy.decode(normalised).cpu()


def degenerate_as_nan(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each term's raw values with NaN where the term reports ``degenerate`` (no geometry to read: not a perfect 0)."""
    out = dict(values)
    for key, value in values.items():
        term = key.split("/", 1)[0]
        flag = values.get(f"{term}/degenerate")
        if flag is not None and "/" in key and not key.endswith(("/degenerate", "/score")):
            out[key] = torch.where(flag > 0, torch.full_like(value, math.nan), value)
    return out


def world_renders(model: Path, clips: int) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """``clips`` ground-truth renders of the held-out prompts with the world settings the model was trained on (its
    manifest): videos (N, F, 3, H, W), prompts, and which clips are rigid (the rest are inconsistent renderings).

    The share of inconsistent renderings is the world's default wherever the model's world had only one kind (a base
    trained on rigid clips only): the consistency threshold is calibrated on both kinds."""
    from world_r1.synthetic import SyntheticWorld, WorldConfig

    config = WorldConfig()
    stages = read_manifest(model).get("stages", [])
    train = stages[-1].get("data", {}).get("train", {}) if stages else {}
    if isinstance(train, dict) and isinstance(train.get("config"), dict):
        config = WorldConfig.from_dict(train["config"])
    if config.inconsistent_share in (0.0, 1.0):
        config = replace(config, inconsistent_share=WorldConfig().inconsistent_share)
    world = SyntheticWorld(config, split="eval", length=clips)
    items = [world[i] for i in range(clips)]
    videos = torch.stack([item["video"] for item in items]).float()
    return videos, [item["prompt"] for item in items], torch.tensor([bool(item["consistent"]) for item in items])


def consistency_threshold(ratio: torch.Tensor, rigid: torch.Tensor) -> dict[str, float]:
    """The epipolar inlier ratio that best separates rigid from inconsistent clips (balanced accuracy)."""
    if rigid.all() or not rigid.any():
        raise ValueError(
            f"calibrating the consistency threshold needs rigid and inconsistent clips, got {len(rigid)} "
            f"{'rigid' if rigid.any() else 'inconsistent'} ones: render more clips (--calibration-clips)."
        )
    best = (0.0, 0.5)
    for threshold in torch.unique(ratio).tolist():
        above = ratio >= threshold
        accuracy = 0.5 * (above[rigid].float().mean() + (~above[~rigid]).float().mean())
        best = max(best, (float(accuracy), float(threshold)))
    return {
        "threshold": best[1],
        "balanced_accuracy": best[0],
        "clips": len(ratio),
        "consistent_mean": float(ratio[rigid].mean()),
        "inconsistent_mean": float(ratio[~rigid].mean()),
    }


def _means(values: dict[str, torch.Tensor], threshold: float, rows: torch.Tensor | None = None) -> dict[str, float]:
    """Table means (NaN-masked, with the consistent share) of the videos selected by ``rows`` (all if None)."""
    values = with_consistency(values, threshold)
    return {key: float(torch.nanmean(values[key] if rows is None else values[key][rows])) for _, key, _ in METRICS}


def references(
    evaluator: Evaluator, model: Path, clips: int, console: Console
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The consistency threshold, and what the base model is measured against: the world's own renders of the
    held-out prompts (rigid, inconsistent), the rigid ones through the model's VAE (what any transformer on these
    latents could reach), and the base model on as many training prompts (does it fit its data or fail to generalise).
    """
    videos, prompts, rigid = world_renders(model, clips)
    rendered = evaluator.score(videos, prompts)
    calibration = consistency_threshold(rendered["epipolar/inlier_ratio"], rigid)
    console.print(
        f"consistency threshold: inlier ratio >= {calibration['threshold']:.3f} "
        f"(balanced accuracy {calibration['balanced_accuracy']:.2f})"
    )
    threshold = calibration["threshold"]
    rigid_prompts = [prompt for prompt, keep in zip(prompts, rigid, strict=True) if keep]
    through_vae = evaluator.score(evaluator.round_trip(videos[rigid]), rigid_prompts)
    console.print("[bold]base model[/] on training prompts")
    train_prompts = [record.text for record in load_prompts("builtin:mini_train")]
    step = max(len(train_prompts) // len(evaluator.prompts), 1)
    on_train = Evaluator(evaluator.config, model, train_prompts[::step][: len(evaluator.prompts)], evaluator.seeds)
    rows = {
        f"renders, rigid ({int(rigid.sum())} clips)": _means(rendered, threshold, rigid),
        f"renders, inconsistent ({int((~rigid).sum())} clips)": _means(rendered, threshold, ~rigid),
        "rigid renders through the VAE": _means(through_vae, threshold),
        "base, training prompts": _means(on_train.run(None, console)[0], threshold),
    }
    return calibration, rows


def with_consistency(values: dict[str, torch.Tensor], threshold: float) -> dict[str, torch.Tensor]:
    """Adds ``consistent`` and ``frozen`` (1/0 per video) to the NaN-masked raw values.

    ``frozen``: the video moves less than ``FROZEN_RATIO`` of the image motion its camera words induce (the trajectory
    term's ``motion_ratio``); NaN for a still camera or where that motion could not be measured. It is the freezing
    check, rather than the raw motion: inconsistent videos read more motion than rigid ones (their matches jump), so a
    model becoming rigid may move less without freezing (the references show both).
    """
    out = degenerate_as_nan(values)
    rigid = (values["epipolar/inlier_ratio"] >= threshold) & (values["epipolar/degenerate"] == 0)
    out["consistent"] = rigid.float()
    out["epipolar/valid"] = 1.0 - values["epipolar/degenerate"]  # a two-view geometry was found on every pair
    ratio = out["trajectory/motion_ratio"]
    frozen = (ratio < FROZEN_RATIO).float()
    out["frozen"] = torch.where(ratio.isnan() | (values["trajectory/static_expected"] > 0), math.nan, frozen)
    return out


def curve(run: Path) -> list[dict[str, float]]:
    """The held-out means the run's ConsistencyEvaluation wrote at each evaluation (step 0 is the base model)."""
    points = []
    for path in sorted((run / "eval").glob("fit_step_*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        points.append({"step": report["step"], **report["metrics"]})
    return points


def verdict(stats: dict[str, dict[str, float]], z: float = 4.0) -> dict[str, bool]:
    """The issue's goal for one run: every 3D metric better by ``z`` standard errors, no freezing (the share of
    frozen videos not significantly above the base's), image sharpness at least 80 % of the base's."""
    direction = {key: sign for _, key, sign in METRICS}
    better = {key: direction[key] * stats[key]["z"] >= z for key in THREE_D if key in stats}
    return {
        **{f"{key} better by {z:g} SE": ok for key, ok in better.items()},
        "no freezing": not stats["frozen"]["z"] > 2.0,
        "sharpness >= 80 % of base": stats["sharpness"]["trained"] >= 0.8 * stats["sharpness"]["base"],
    }


# ---------------------------------------------------------------------------------------------------- report
def record_base_metrics(model: Path, results: dict) -> None:
    """Add the base model's held-out metrics (and how they were measured) to its ``world_r1_manifest.json``."""
    manifest = read_manifest(model)
    settings = results["settings"]
    manifest["base_metrics"] = {
        "command": "python -m benchmarks.experiments.miniature --record-base",
        "held_out": f"{settings['prompts']} prompts of builtin:mini_eval x {settings['eval_seeds']} seeds, ODE "
        "sampling with the settings of configs/mini.yaml",
        "means": results["base"],
        "consistent_threshold": results["calibration"],
    }
    (model / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(results: dict) -> str:
    """The paper-style table (base vs trained, one row per run) and the paired statistics."""
    columns = [name for name, _, _ in METRICS]
    lines = [
        "# World-R1 in miniature",
        "",
        f"Held-out: {results['settings']['prompts']} prompts x {results['settings']['eval_seeds']} seeds of "
        f"`builtin:mini_eval`, ODE sampling, EMA LoRA; {results['settings']['steps']} Flow-GRPO steps per run. "
        "Base row: means over videos (a term's over those it does not call degenerate). Trained rows: the paired "
        "change, trained minus base over the videos both sides measure, and in brackets that change in standard "
        "errors (z); a change, not a mean, as the two sides can lose different videos to degenerate geometry.",
        "",
        *(
            [f"Every run edits `{results['settings']['config']}`, not `configs/mini.yaml`.", ""]
            if results["settings"].get("config", "configs/mini.yaml") != "configs/mini.yaml"
            else []
        ),
        *(
            [f"Partial: {len(results['runs'])} of the {len(results['settings']['plan'])} planned runs measured.", ""]
            if not results.get("complete", True)
            else []
        ),
        "| model | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    base = results["base"]
    lines.append("| base | " + " | ".join(_number(base.get(key)) for _, key, _ in METRICS) + " |")
    for run in results["runs"]:
        stats = run["stats"]
        cells = [f"{stats[k]['diff']:+.3f} ({stats[k]['z']:+.1f})" if k in stats else "-" for _, k, _ in METRICS]
        lines.append(f"| {run['variant']} seed {run['seed']} | " + " | ".join(cells) + " |")
    if results.get("references"):
        lines += ["", "What the base is measured against (no pairing, so no z):", ""]
        lines += ["| reference | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, means in results["references"].items():
            lines.append(f"| {name} | " + " | ".join(_number(means.get(key)) for _, key, _ in METRICS) + " |")
    if results["runs"]:  # none when only the base and the references were measured
        lines += ["", "| run | goal met | failed checks |", "|---|---|---|"]
        for run in results["runs"]:
            failed = [name for name, ok in run["verdict"].items() if not ok]
            verdict_cell = "yes" if not failed else "no"
            lines.append(f"| {run['variant']} seed {run['seed']} | {verdict_cell} | {', '.join(failed)} |")
    calibration = results["calibration"]
    lines += [
        "",
        f"Consistent = epipolar inlier ratio >= {calibration['threshold']:.3f}, the threshold that best separates "
        f"{calibration['clips']} ground-truth renders of the held-out prompts (balanced accuracy "
        f"{calibration['balanced_accuracy']:.2f}; rigid {calibration['consistent_mean']:.3f}, inconsistent "
        f"{calibration['inconsistent_mean']:.3f}). References: the world's renders of the held-out "
        "prompts, the rigid ones encoded and decoded by the model's VAE, and the base model on as many training "
        "prompts and seeds.",
        "",
        f"{machine_line(results['machine'])} Total run: {results['seconds'] / 60:.0f} min.",
    ]
    return "\n".join(lines) + "\n"


def figure(results: dict, strips: dict[str, torch.Tensor], prompts: list[str], path: Path) -> Path:
    """Held-out score against step for every run (top), and the first, middle and last frame of base and trained
    videos for the same prompt and seed (one column per prompt)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(len(videos) for videos in strips.values()) if strips else 0
    curves = 1 if results["runs"] else 0  # the base alone (``--seeds`` with no value) has no score against step
    fig = plt.figure(figsize=(15, 4 * curves + 2.2 * len(strips)))
    grid = fig.add_gridspec(curves + len(strips), max(count, 2), height_ratios=[2.2] * curves + [1] * len(strips))
    half = max(count, 2) // 2
    for column, key in enumerate(("epipolar/inlier_ratio", "trajectory/score") if curves else ()):
        axis = fig.add_subplot(grid[0, column * half : (column + 1) * half if column == 0 else None])
        for run in results["runs"]:
            points = [p for p in run["curve"] if key in p]
            axis.plot([p["step"] for p in points], [p[key] for p in points], marker="o", label=run["name"])
        axis.set_xlabel("Flow-GRPO step")
        axis.set_ylabel(f"held-out {key}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for row, (label, videos) in enumerate(strips.items(), start=curves):
        for column in range(count):
            frames = videos[column][[0, videos.shape[1] // 2, videos.shape[1] - 1]].permute(0, 2, 3, 1).clamp(0, 1)
            axis = fig.add_subplot(grid[row, column])
            axis.imshow(torch.cat(list(frames), dim=1).numpy())
            axis.set_axis_off()
            axis.set_title(f"{label}: {prompts[column].split('.')[0]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------------ main
def _noise(evaluator: Evaluator) -> str:
    """Which starting noise and camera injection a run's config samples with (the base model is measured once per
    kind): "plain", "warped" (the shipped transport from warped noise), or the warp and injection by name."""
    camera = evaluator.module.camera
    if not camera.enabled:
        return "plain"
    if (camera.warp, camera.injection) == ("transport", "initial"):
        return "warped"
    return f"{camera.warp}+{camera.injection}"


def headline(results: dict) -> str:
    """Each run's paired change of the epipolar inlier ratio in standard errors and whether it met the goal."""
    key = "epipolar/inlier_ratio"
    if not results["runs"]:
        return f"base only: {key} {results['base'][key]:.3f}, consistent share {results['base']['consistent']:.2f}"
    cells = []
    for run in results["runs"]:
        z = run["stats"].get(key, {}).get("z")
        met = "goal met" if all(run["verdict"].values()) else "goal not met"
        cells.append(f"{run['name']} {'-' if z is None else f'{z:+.1f}'} SE ({met})")
    return f"{key} change: " + ", ".join(cells)


def _results(call, model, plan, prompts, calibration, references, base_by_config, runs, seconds: float) -> dict:
    """The benchmark's record of the runs measured so far (``complete`` once every planned run is in)."""
    args = call.args
    base = next(iter(base_by_config.values()))  # the shipped config's: measured first
    results = {
        "settings": {
            "model": shown_path(model),
            "config": shown_path(args.config),
            "steps": args.steps or yaml.safe_load(args.config.read_text(encoding="utf-8"))["trainer"]["max_steps"],
            "prompts": len(prompts),
            "eval_seeds": args.eval_seeds,
            "plan": plan,
        },
        "complete": len(runs) == len(plan),
        "calibration": calibration,
        "references": references,
        "base": {key: float(torch.nanmean(base[key])) for _, key, _ in METRICS},
        "runs": runs,
        "seconds": seconds,
    }
    results["headline"] = headline(results)
    results["provenance"] = call.provenance(VARIANTS, vars(args) | {"model": model})
    results["machine"] = results["provenance"]["machine"]  # where the Markdown reads it
    return results


def _write(results: dict, out: Path) -> None:
    write_result(out, results, markdown(results))


def model_dir(model: str) -> Path:
    """The local diffusers Wan directory ``--model`` names (``builtin:NAME`` is one shipped with world-r1)."""
    name = model.removeprefix("builtin:")
    if name != model and name not in BUILTIN_MODELS:
        raise SystemExit(f"Unknown built-in model {model!r}; the built-in models: {sorted(BUILTIN_MODELS)}.")
    path = Path(BUILTIN_MODELS[name] if name != model else model).resolve()
    if not (path / "model_index.json").is_file():
        raise SystemExit(f"No mini model at {path}: pass --model builtin:mini-wan or a directory (make mini-model).")
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.experiments.miniature", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model",
        default="builtin:mini-wan",
        help="the mini base model: a diffusers Wan directory (make mini-model writes .cache/world_r1/mini-wan) or "
        "builtin:mini-wan, the one shipped with world-r1",
    )
    parser.add_argument("--config", type=Path, default=CONFIG, help="the World-R1 config every run edits")
    parser.add_argument(
        "--seeds", type=int, nargs="*", default=[0, 1, 2], help="training seeds of world-r1 (none: base and references)"
    )
    parser.add_argument("--edit", default="world-r1", choices=EDITS, help="what --seeds trains (several seeds)")
    parser.add_argument("--ablations", nargs="*", default=PAPER_ABLATIONS, choices=EDITS)
    parser.add_argument("--ablation-seed", type=int, default=0, help="training seed of every ablation")
    parser.add_argument("--steps", type=int, default=None, help="Flow-GRPO steps per run (default: the config's)")
    parser.add_argument("--eval-seeds", type=int, default=3, help="seeds per held-out prompt")
    parser.add_argument("--calibration-clips", type=int, default=60, help="ground-truth renders for the threshold")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "miniature", help="where the runs go")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/experiments/miniature/)")
    parser.add_argument(
        "--record-base", action="store_true", help="also write the base model's metrics into its manifest"
    )
    call = parse(parser, argv, VARIANTS, "experiments", "miniature")
    args = call.args
    console = Console(width=max(Console().width, 120))
    model = model_dir(args.model)
    start = time.perf_counter()
    plan = [(args.edit, seed) for seed in args.seeds] + [(name, args.ablation_seed) for name in args.ablations]
    prompts = [record.text for record in load_prompts("builtin:mini_eval")]
    seeds = list(range(args.eval_seeds))
    shown = [0, len(prompts) // 3, 2 * len(prompts) // 3]  # three prompts of seed 0 in the figure
    shipped = Evaluator(args.config, model, prompts, seeds)
    calibration, reference_rows = references(shipped, model, args.calibration_clips, console)
    console.print("[bold]base model[/] (the shipped config's noise)")
    values, videos = shipped.run(None, console, keep=shown)
    base_by_config = {_noise(shipped): with_consistency(values, calibration["threshold"])}
    strips = {"base": videos}
    runs: list[dict] = []

    def results() -> dict:
        seconds = time.perf_counter() - start
        return _results(call, model, plan, prompts, calibration, reference_rows, base_by_config, runs, seconds)

    _write(results(), args.out)
    for name, seed in plan:
        began = time.perf_counter()
        workdir = args.workdir / f"{name}-seed{seed}"
        log_dir = train(EDITS[name], seed, model, args.steps, workdir, console, base=args.config)
        evaluator = Evaluator(workdir / "config.yaml", model, prompts, seeds)
        noise = _noise(evaluator)
        if noise not in base_by_config:
            console.print(f"[bold]base model[/] ({noise} noise)")
            base_by_config[noise] = with_consistency(evaluator.run(None, console)[0], calibration["threshold"])
        console.print(f"[bold]{name} seed {seed}[/]")
        values, videos = evaluator.run(log_dir / "lora", console, keep=shown)
        trained = with_consistency(values, calibration["threshold"])
        if name == args.edit and name not in strips:
            strips[name] = videos
        stats = {key: paired_difference(base_by_config[noise][key], trained[key]) for _, key, _ in METRICS}
        runs.append(
            {
                "name": f"{name} seed {seed}",
                "variant": name,
                "description": EDITS[name].description,
                "seed": seed,
                "noise": noise,
                "stats": stats,
                "verdict": verdict(stats),
                "curve": curve(log_dir),
                "seconds": time.perf_counter() - began,
            }
        )
        _write(results(), args.out)  # after every run: an interrupted benchmark keeps what it measured
    final = results()
    if args.record_base:
        record_base_metrics(model, final)
    figure(final, strips, [prompts[i] for i in shown], args.out.with_suffix(".png"))
    console.print(markdown(final))
    return final


if __name__ == "__main__":
    main()
