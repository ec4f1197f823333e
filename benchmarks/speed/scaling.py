"""Benchmark 4: how rollout, training-step and reward figures grow with frames (9, 17, 33, 81) and resolution.

Small settings (batch 1, a few steps, few repeats) keep the grid inside the suite's time budget; each row's ratios
are still measured within the row, so they stay comparable along the grid.
"""

from __future__ import annotations

from functools import partial

import torch

from benchmarks.common import ModelSize, build_bench_policy, interleaved_medians
from benchmarks.speed.rewards import GEOMETRY, analysis_settings, available_rewards, make_videos, opencv_baseline
from benchmarks.speed.rollout import rollout_functions
from benchmarks.speed.training import training_functions
from world_r1.geometry import frame_pairs
from world_r1.policy import VideoSpec
from world_r1.rewards import WeightedReward

#: (frames, height, width): the frame axis at 128x128, then the resolution axis at 17 frames.
GRID: tuple[tuple[int, int, int], ...] = (
    (9, 128, 128),
    (17, 128, 128),
    (33, 128, 128),
    (81, 128, 128),
    (17, 64, 64),
    (17, 256, 256),
)


def _opencv(videos: torch.Tensor, settings: dict) -> float:
    """The OpenCV baseline on the reward's pairs, resolution and keypoint budget."""
    pairs = frame_pairs(videos.shape[1], settings["gaps"], settings["max_pairs"])
    return opencv_baseline(videos, pairs, settings["max_side"], settings["num_features"])


def run(
    size: ModelSize | None = None,
    grid: tuple[tuple[int, int, int], ...] = GRID,
    steps: int = 4,
    repeats: int = 3,
) -> dict:
    """One row per grid point: seconds and in-row ratios of rollout (vs diffusers), trained step (vs CFG forward) and
    the epipolar reward (vs the OpenCV baseline), batch 1."""
    size = size or ModelSize()
    policy, pipeline = build_bench_policy(size)
    epipolar = available_rewards(["EpipolarReward"])[0].get("EpipolarReward")
    settings = analysis_settings()
    scored = WeightedReward({"epipolar": epipolar}, geometry=GEOMETRY) if epipolar is not None else None
    rows = []
    for frames, height, width in grid:
        spec = VideoSpec(height=height, width=width, num_frames=frames)
        _, t, h, w = spec.latent_shape()
        rollout = rollout_functions(policy, pipeline, spec, 1, steps, text_tokens=size.text_tokens)
        training = training_functions(policy, spec, 1, steps, min(2, steps), size.text_tokens)
        functions = {
            "rollout": rollout["ours"],
            "diffusers": rollout["diffusers"],
            "cfg_forward": training["cfg_forward"],
            "trained_step": training["trained_step"],
        }
        if epipolar is not None:
            videos = make_videos(1, frames, height, width)
            functions["reward"] = lambda videos=videos: scored(videos, [""])
            functions["opencv"] = partial(_opencv, videos, settings)
        seconds = interleaved_medians(functions, repeats=repeats)
        rows.append(
            {
                "frames": frames,
                "size": f"{width}x{height}",
                "tokens": t * (h // 2) * (w // 2),
                "rollout s": seconds["rollout"],
                "rollout / diffusers": seconds["rollout"] / seconds["diffusers"],
                "train step s": seconds["trained_step"],
                "step / CFG fwd": seconds["trained_step"] / seconds["cfg_forward"],
                "reward videos/s": 1 / seconds["reward"] if "reward" in seconds else None,
                "reward speed / OpenCV": seconds["opencv"] / seconds["reward"] if "reward" in seconds else None,
            }
        )
    return {
        "config": {"model": size.__dict__, "batch": 1, "steps": steps, "repeats": repeats, "grid": list(grid)},
        "rows": rows,
        "figures": {},
    }
