"""How much of the training reward's spread within a group is chance, and what it pays for, on the mini Wan.

``python -m benchmarks.validation.chance`` samples groups of one prompt exactly as a Flow-GRPO step does (the config's
SDE window, noise level and warped initial noise), scores them with the training reward, then scores the same videos
again after changes no one can see: 8-bit quantisation (what saving a video does) and +-1/255 uniform noise. Per
reward key it reports the spread across the rollouts, the retest correlation (1: the key reads the video; 0: it reads
chance) and the correlation with the videos' image motion (the ``parallax_px`` the geometry core measures): a term
that rises or falls with motion asks the policy to move more or less, whatever its name. Writes
``results/validation/chance/default.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.experiments.miniature import CONFIG, ROOT, Evaluator, shown_path
from benchmarks.provenance import Variant, parse, write_result
from world_r1.module import WorldR1

PROMPT = "Camera truck left. A red tower in front of a brick wall on a tiled floor."  # the first translating one
MOTION = "epipolar/parallax_px"
RETESTS = ("8-bit", "noise 1/255")


def retest_videos(videos: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """The same videos after invisible changes: rounded to 8 bits, and with uniform noise of +-1/255."""
    noise = torch.rand(videos.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return {"8-bit": (videos * 255).round() / 255, "noise 1/255": (videos + noise / 255).clamp(0, 1)}


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation over the entries finite in both; NaN where either side does not vary."""
    keep = a.isfinite() & b.isfinite()
    a, b = a[keep].double(), b[keep].double()
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def summarise(scores: dict[str, torch.Tensor], retests: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict]:
    """Per key: mean, spread (std), retest correlation and std of the retest difference per retest, and the
    correlation with image motion."""
    out = {}
    for key, values in scores.items():
        entry = {"mean": float(values.nanmean()), "std": float(values[values.isfinite()].std())}
        for name, again in retests.items():
            entry[f"retest r ({name})"] = correlation(values, again[key])
            both = values.isfinite() & again[key].isfinite()
            entry[f"retest std ({name})"] = float((values - again[key])[both].std())
        entry["r with motion"] = correlation(values, scores[MOTION])
        out[key] = entry
    return out


def markdown(results: dict) -> str:
    """The summary as one Markdown table, the reward's terms and total first."""
    settings = results["settings"]
    lines = [
        "# How much of the training reward is chance",
        "",
        f'{settings["rollouts"]} training rollouts of "{settings["prompt"]}" ({settings["config"]}, groups of'
        f" {settings['group_size']}), scored by the training reward and scored again after invisible changes. Retest r:"
        " correlation of the two scores over the rollouts (1 reads the video, 0 reads chance); r with motion: against"
        " the videos' image motion (parallax).",
        "",
    ]
    columns = ["mean", "std", *(f"retest r ({n})" for n in RETESTS), "r with motion"]
    lines += ["| key | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    table = results["keys"]
    order = sorted(table, key=lambda k: ("/" in k, k != "total", k))
    for key in order:
        lines.append(f"| {key} | " + " | ".join(f"{table[key][c]:.3f}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


@torch.no_grad()
def training_rollouts(module: WorldR1, prompt: str, count: int, group: int) -> torch.Tensor:
    """``count`` decoded videos of ``prompt``: the rollouts of Flow-GRPO steps 0, 1, ... on groups of ``group``."""
    videos = []
    for step in range(-(-count // group)):
        batch = {
            "prompts": [prompt] * group,
            "step": step,
            "group_ids": torch.zeros(group, dtype=torch.long),
            "sample_ids": torch.arange(group),
        }
        videos.append(module.policy.decode(module.sampler.rollout(batch).rollout.final).float().cpu())
    return torch.cat(videos)[:count]


VARIANTS: dict[str, Variant] = {"default": Variant(note="32 rollouts of one mini-world prompt on the shipped mini Wan")}


def headline(results: dict) -> str:
    """Each key's retest correlation after 8-bit rounding (1: it reads the video, 0: chance)."""
    cells = [f"{key} {row.get('retest r (8-bit)', float('nan')):.2f}" for key, row in results["keys"].items()]
    return "retest r after 8-bit rounding: " + ", ".join(cells[:6])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation.chance", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "world_r1" / "assets" / "mini_wan")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the World-R1 config: reward, sampling")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--rollouts", type=int, default=32)
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default results/validation/chance/<variant>)"
    )
    call = parse(parser, argv, VARIANTS, "validation", "chance")
    args = call.args
    console = Console()
    evaluator = Evaluator(args.config, args.model.resolve(), [args.prompt], [])
    group = evaluator.group_size
    videos = training_rollouts(evaluator.module, args.prompt, args.rollouts, group)
    prompts = [args.prompt] * len(videos)
    reward = evaluator.module.reward

    def score(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        columns: dict[str, list[torch.Tensor]] = {}
        for start in range(0, len(batch), 8):
            out = reward(batch[start : start + 8], prompts[start : start + 8])
            for key, value in out.items():
                if torch.is_tensor(value) and value.ndim == 1:
                    columns.setdefault(key, []).append(value.float().cpu())
        return {key: torch.cat(value) for key, value in columns.items()}

    scores = score(videos)
    retests = {name: score(changed) for name, changed in retest_videos(videos).items()}
    settings = {"config": shown_path(args.config), "prompt": args.prompt, "rollouts": len(videos), "group_size": group}
    results = {"settings": settings, "keys": summarise(scores, retests)}
    results |= {"headline": headline(results), "provenance": call.provenance(VARIANTS, vars(args) | settings)}
    write_result(args.out, results, markdown(results))
    console.print(markdown(results))
    return results


if __name__ == "__main__":
    main()
