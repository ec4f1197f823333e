"""The prompt sets shipped with world-r1: train (world simulation), dynamic (decoupled phase), eval (held out)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTIN_SETS = ("train", "dynamic", "eval")


def builtin_prompt_file(name: str) -> Path:
    """Path of a shipped prompt set by name."""
    if name not in BUILTIN_SETS:
        raise ValueError(f"Unknown built-in prompt set {name!r}; choose one of {list(BUILTIN_SETS)}.")
    return Path(str(resources.files(__package__) / f"{name}.txt"))
