"""World-R1's released recipe, knob by knob, and the table that holds configs against it.

The release's values are restated here from its published code (training script, experiment config, Wan pipeline
patch, camera utilities); :func:`recipe_table` reads them beside what each config sets, so the docs' table is
generated, and a test keeps the docs, the configs and this list in step. A config is one YAML file or a stack of
them (``configs/wan21.yaml`` then an overlay), merged as ``--config A --config B`` merges them
(:func:`world_r1.cli.resolved_config`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Knob:
    """One setting of the recipe: where a config holds it (``path``, dotted; ``[Name]`` picks the callback whose
    class path ends with ``Name``), the release's value, and, where the release's value depends on the run's size,
    a check of a config's value given the whole config."""

    path: str
    release: Any
    matches: Callable[[Any, dict], bool] | None = None

    def agrees(self, value: Any, config: dict) -> bool:
        """Whether ``value`` (what ``config`` sets) is the release's."""
        if self.matches is not None:
            return self.matches(value, config)
        if isinstance(self.release, float) and isinstance(value, int | float):
            return abs(value - self.release) <= 1e-12 * max(1.0, abs(self.release))
        return value == self.release


def _gpus(config: dict) -> int:
    trainer = config.get("trainer", {})
    return int(trainer.get("devices", 1)) * int(trainer.get("num_nodes", 1))


RECIPE: tuple[Knob, ...] = (
    Knob("model.sampling.rollout", "unipc"),
    Knob("model.sampling.train_steps", 50),
    Knob("model.sampling.timestep_fraction", 0.49),
    Knob("model.sampling.eval_steps", 50),
    Knob("model.sampling.eval_sampler", "unipc"),
    Knob("model.sampling.guidance_scale", 5.0),
    Knob("model.sampling.flow_shift", 3.0),
    Knob("model.policy.negative_prompt", ""),
    Knob("model.policy.dtype", "fp32"),
    Knob("model.policy.compute_dtype", "bf16"),
    Knob("model.policy.lora.rank", 32),
    Knob("model.policy.lora.alpha", 64.0),
    Knob("model.policy.lora.init", "gaussian"),
    Knob("model.grpo.lr", 1e-4),
    Knob("model.grpo.weight_decay", 1e-4),
    Knob("model.grpo.clip_range", 1e-3),
    Knob("model.grpo.beta", 0.004),
    Knob("model.grpo.adv_clip", 5.0),
    Knob("model.grpo.std_mode", "group"),
    Knob("model.grpo.max_grad_norm", 1.0),
    Knob("model.grpo.inner_epochs", 1),
    Knob("model.grpo.train_fraction", 1.0),
    Knob("data.group_size", 2),
    Knob("data.prompts_per_step", "12 per GPU", lambda value, config: value == 12 * _gpus(config)),
    Knob("data.main_steps", 100),
    Knob("data.decoupled_steps", 50),
    Knob("model.camera.warp", "gwtf"),
    Knob("model.camera.injection", "stepwise"),
    Knob("model.camera.strength", "0.35 (1.3B), 0.40 (14B)", lambda value, config: value in (0.35, 0.4)),
    Knob("model.camera.degradation", 0.35),
    Knob("model.camera.flow_scale", 16),
    Knob("model.camera.focal", 1.2),
    Knob("model.camera.plane_depth", 1000.0),
    Knob("model.camera.max_flow", 0.25),
    Knob("model.camera.reinject_steps", 8),
    Knob("model.camera.reinject_kernel", 9),
    Knob("model.camera.motion.rotation_deg", 14.0),
    Knob("model.camera.motion.orbit_deg", 24.0),
    Knob("model.camera.motion.translation", 220.0),
    Knob("model.camera.motion.dolly", 600.0),
    Knob("model.camera.motion.orbit_radius", 600.0),
    Knob("model.camera.motion.convention", "release"),
    Knob("trainer.callbacks[LoRAEMA].decay", 0.9),
    Knob("trainer.callbacks[LoRAEMA].update_every", 8),
    Knob("trainer.callbacks[LoRAEMA].warmup", "steps"),
    Knob("trainer.callbacks[LoRAEMA].repeats", 24),
    Knob("trainer.callbacks[ConsistencyEvaluation].every_n_steps", 30),
    Knob("trainer.callbacks[ModelCheckpoint].every_n_train_steps", 60),
    Knob("model.reward.terms.release3d.reconstruction", "depth-anything/DA3-GIANT"),
    Knob("model.reward.terms.release3d.critic", "Qwen/Qwen3-VL-4B-Instruct"),
    Knob("model.reward.weights.release3d", 3.0),
    Knob("model.reward.terms.preference.checkpoint", "xswu/HPSv2"),
)

_MISSING = object()


def config_value(config: dict, path: str) -> Any:
    """The value at ``path`` in a parsed YAML config (a class's ``init_args`` are looked through), or ``_MISSING``."""
    node: Any = config
    for part in path.split("."):
        name, _, selector = part.partition("[")
        node = node.get(name, _MISSING) if isinstance(node, dict) else _MISSING
        if selector and isinstance(node, list):
            wanted = selector.rstrip("]")
            node = next((c for c in node if str(c.get("class_path", "")).endswith(wanted)), _MISSING)
        if isinstance(node, dict) and "init_args" in node and "class_path" in node:
            node = node["init_args"] or {}
        if node is _MISSING:
            return _MISSING
    return node


def _cell(value: Any) -> str:
    if value is _MISSING or value is None:  # unset: the field's default
        return "-"
    if value == "":
        return '""'
    text = str(value)
    return f"`{text[:10]}...`" if len(text) > 24 else f"`{text}`"  # Wan's negative prompt is 130 characters


#: one YAML config, or a stack of them applied in order (the base, then overlays)
ConfigStack = str | Path | Sequence[str | Path]


def _files(config: ConfigStack) -> list[Path]:
    return [Path(config)] if isinstance(config, str | Path) else [Path(c) for c in config]


def load_config(config: ConfigStack) -> dict:
    """The config as ``fit --config ... --print_config`` prints it: the stack merged by the real parser. A stack is
    parsed once per process while its files are unchanged (each parse builds the whole CLI); callers get a copy."""
    files = tuple(path.resolve() for path in _files(config))
    return copy.deepcopy(_parsed(files, tuple(path.stat().st_mtime_ns for path in files)))


@functools.lru_cache(maxsize=64)
def _parsed(files: tuple[Path, ...], stamps: tuple[int, ...]) -> dict:
    """``files`` merged by the real parser; ``stamps`` (their modification times) make an edited file a new key."""
    from world_r1.cli import resolved_config  # the CLI imports the whole package: only when a table is made

    return resolved_config(*files)


def recipe_table(configs: Sequence[ConfigStack]) -> str:
    """The docs' table: one row per knob of :data:`RECIPE`, the release's value, then each config's (a column named
    by its last file), a value that differs from the release's in bold."""
    parsed = [load_config(c) for c in configs]
    header = "| knob | release | " + " | ".join(_files(c)[-1].name for c in configs) + " |"
    rows = [header, "|---" * (2 + len(configs)) + "|"]
    for knob in RECIPE:
        release = knob.release if isinstance(knob.release, str) and knob.matches else _cell(knob.release)
        cells = []
        for config in parsed:
            value = config_value(config, knob.path)
            text = _cell(value)
            cells.append(text if value is not _MISSING and knob.agrees(value, config) else f"**{text}**")
        rows.append(f"| `{knob.path}` | {release} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def differences(config: ConfigStack) -> list[str]:
    """The knobs of :data:`RECIPE` where ``config`` (a file or a base-and-overlay stack) does not set the release's
    value."""
    config = load_config(config)
    return [k.path for k in RECIPE if not k.agrees(config_value(config, k.path), config)]
