"""Where every result file comes from: named variants, the command line, the commit, the settings and the machine.

A result is only worth keeping if it can be re-made, so every speed benchmark, validation and experiment writes the
same ``provenance`` block through :func:`record`, and names its committed results by variant: a variant is the
argument list that reproduces one result file, selected by ``--variant NAME`` and written to
``results/<kind>/<name>/<variant>.json``. A command with arguments beyond its variant's writes under ``runs/`` (not
committed) unless ``--out`` says otherwise, so an experiment with other settings never overwrites a named result.
Light on imports (no torch at import time): the index reads results without loading any model code.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, is_dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("speed", "validation", "experiments")
PACKAGES = ("torch", "diffusers", "transformers", "kornia", "opencv-python-headless", "numpy", "peft", "world-r1")


@dataclass(frozen=True)
class Variant:
    """The arguments that reproduce one committed result, why it exists, and what must run before it (a model)."""

    args: tuple[str, ...] = ()
    note: str = ""
    requires: tuple[str, ...] = ()  # commands run first, e.g. building the base model the variant measures


def shown_path(path: Path | str) -> str:
    """``path`` relative to the repository when inside it (results never record one machine's absolute paths)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit() -> dict[str, object]:
    """The checked-out commit and whether tracked files differ from it: the code the numbers belong to."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "-uno")
    return {"commit": sha, "dirty": None if status is None else bool(status)}


def git_state() -> str | None:
    """The short commit, with ``+dirty`` when tracked files differ from it (the one-line form reports print)."""
    state = commit()
    if state["commit"] is None:
        return None
    return str(state["commit"])[:7] + ("+dirty" if state["dirty"] else "")


def machine() -> dict[str, object]:
    """Where the numbers were measured: CPU, cores, threads, load, GPU, library versions, date (UTC)."""
    import torch  # here, not at import: the index needs no torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    info: dict[str, object] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": load[0],  # others' load: noise on a shared machine
        "load_average_15m": load[2],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git": git_state(),
    }
    for package in PACKAGES:
        info[package] = _version(package)
    return info


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return shown_path(value)
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def record(command: str, settings: dict | None = None, variant: str | None = None, args: tuple = ()) -> dict:
    """The ``provenance`` block of a result: command, variant, resolved settings, commit, date and machine."""
    info = machine()
    block: dict[str, object] = {"command": command}
    if variant is not None:
        block |= {"variant": variant, "variant_args": list(args)}
    return block | {
        "settings": _plain(settings or {}),
        **commit(),
        "date_utc": info["date_utc"],
        "machine": info,
    }


@dataclass
class Invocation:
    """One parsed command line: its arguments, the variant it names, the exact command and where it writes."""

    args: argparse.Namespace
    variant: str
    command: str
    named: bool  # True when the arguments are exactly the variant's: the output is the committed result

    def provenance(self, variants: dict[str, Variant], settings: dict | None = None) -> dict:
        """The ``provenance`` block with this command's resolved settings (default: every parsed argument)."""
        resolved = vars(self.args) if settings is None else settings
        return record(self.command, resolved, self.variant, variants[self.variant].args)


def parse(
    parser: argparse.ArgumentParser, argv: list[str] | None, variants: dict[str, Variant], kind: str, name: str
) -> Invocation:
    """Parse ``argv`` after the arguments of its ``--variant`` (default ``default``); set ``args.out`` (which the
    parser must define with default None) to ``results/<kind>/<name>/<variant>.json`` when the command is exactly
    the variant, else to ``runs/results/<kind>/<name>/<variant>+custom.json``."""
    names = ", ".join(f"{key} ({' '.join(v.args) or 'no arguments'})" for key, v in variants.items())
    parser.add_argument("--variant", choices=list(variants), default="default", help=f"a named result: {names}")
    raw = list(sys.argv[1:] if argv is None else argv)
    chosen, rest = argparse.ArgumentParser(add_help=False), []
    chosen.add_argument("--variant", choices=list(variants), default="default")
    known, rest = chosen.parse_known_args(raw)
    args = parser.parse_args([*variants[known.variant].args, *rest])
    named = not _without_out(rest)
    if args.out is None:
        folder = RESULTS if named else ROOT / "runs" / "results"
        args.out = folder / kind / name / (f"{known.variant}.json" if named else f"{known.variant}+custom.json")
    module = parser.prog.removeprefix("python -m ")
    return Invocation(args, known.variant, shlex.join(["python", "-m", module, *raw]), named)


def _without_out(tokens: list[str]) -> list[str]:
    """``tokens`` less any ``--out PATH``: where a result goes does not change what it measures."""
    kept, skip = [], False
    for token in tokens:
        if skip or token == "--out" or token.startswith("--out="):
            skip = token == "--out"
            continue
        kept.append(token)
    return kept


def write_result(path: Path, results: dict, markdown: str | None = None) -> Path:
    """Write ``results`` as JSON (NaN kept, as Python reads it back) and, when given, its Markdown beside it with the
    command and commit at the foot."""
    if "headline" not in results or "provenance" not in results:
        raise ValueError("a result needs a 'headline' and a 'provenance' block (benchmarks.provenance.record)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    if markdown is not None:
        block = results["provenance"]
        state = f"{str(block['commit'])[:12]}{' (dirty tree)' if block.get('dirty') else ''}"
        footer = f"\nCommand: `{block['command']}`; commit {state}; {block['date_utc']}.\n"
        path.with_suffix(".md").write_text(markdown + footer, encoding="utf-8")
    return path
