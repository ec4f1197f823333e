"""`python -m world_r1 camera "PROMPT" ...`: the camera path each prompt gets, one JSON line per prompt.

What rollouts warp the noise along and what the trajectory reward expects, so a prompt file can be checked before a
run: ``{"prompt", "movements", "poses"}`` with the movements in order (World-R1's phrases where one applies) and the
camera-to-world poses (F x 4 x 4, OpenCV axes: x right, y down, z forward; World-R1's units by default).
"""

from __future__ import annotations

import json
import sys

from world_r1.camera import RELEASE_PHRASES, MotionScale, camera_to_world, camera_trajectory, plan_for_prompt
from world_r1.camera.grammar import CameraPlan
from world_r1.data import load_prompts

#: the release's phrase for each movement it has (others are written in the grammar's words)
_RELEASE_WORDS = {(m.kind, m.sign): phrase for phrase, motions in RELEASE_PHRASES.items() for m in motions}


def movements(plan: CameraPlan) -> list[str]:
    """The plan's movements in order, each in World-R1's phrase where it has one ("push in", "fixed"), else the
    grammar's ("tilt up slowly", "pan left and tilt up")."""
    out = []
    for segment in plan.segments:
        if not segment:
            out.append("fixed")
        elif len(segment) == 1 and segment[0].speed == 1.0 and (segment[0].kind, segment[0].sign) in _RELEASE_WORDS:
            out.append(_RELEASE_WORDS[segment[0].kind, segment[0].sign])
        else:
            out.append(" and ".join(m.describe() for m in segment))
    return out


def camera_path(prompt: str, frames: int = 81, motion: MotionScale | None = None, camera: str | None = None) -> dict:
    """``{"prompt", "movements", "poses"}`` of one prompt (``camera``: an explicit camera description overriding
    the prompt's, as a JSONL prompt file's ``"camera"``); no camera gives no movements and ``frames`` identities."""
    plan = plan_for_prompt(prompt, camera)
    poses = camera_to_world(camera_trajectory(plan, frames, motion or MotionScale()).double())
    return {
        "prompt": prompt,
        "movements": movements(plan),
        "poses": [[[round(v, 6) + 0.0 for v in row] for row in pose] for pose in poses.tolist()],
    }


def camera(
    text: list[str] | None = None, prompts: str | None = None, frames: int = 81, motion: MotionScale | None = None
) -> None:
    """Print the camera path each prompt gets: one JSON line per prompt (``python -m world_r1 camera "PROMPT" ...``).

    Args:
        text: prompts given on the command line (also positionally, before any option).
        prompts: a prompt file (.txt or .jsonl, or builtin:NAME), read as `fit` reads it.
        frames: frames of the path (the video's: 81 for Wan 2.1).
        motion: how far each movement goes and the path's convention (default: World-R1's release), e.g.
            ``--motion.convention classic``.
    """
    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}.")
    items = [(t, None) for t in text or []]
    if prompts is not None:
        items += [(r.text, r.camera) for r in load_prompts(prompts)]
    if not items:
        raise ValueError('Give prompts: `python -m world_r1 camera "Camera push in. A hall."` or --prompts FILE.')
    for prompt, explicit in items:
        sys.stdout.write(json.dumps(camera_path(prompt, frames, motion, explicit)) + "\n")


def positional_prompts(args: list[str]) -> list[str]:
    """``camera``'s arguments with the prompts given before any option turned into ``--text+ PROMPT`` (jsonargparse
    takes options only)."""
    first_option = next((i for i, arg in enumerate(args) if arg.startswith("-")), len(args))
    leading = [item for arg in args[:first_option] for item in ("--text+", arg)]
    return leading + args[first_option:]
