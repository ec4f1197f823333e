"""Saved hyper-parameters -> the objects the code uses, in one place, whatever form they were saved in.

A checkpoint written by ``fit`` from a YAML config holds the module's settings as plain dicts (LightningCLI saves
what it parsed); one written from Python holds the dataclasses themselves; one written by an older world-r1 lacks
settings added since. :func:`upgrade` turns any of them into today's dict form, filling a missing setting with the
value the old run behaved as (not today's default, which may differ); :func:`module_arguments` builds the
dataclasses ``WorldR1`` takes. Resume (``--ckpt_path``), ``sample --checkpoint``, ``validate`` and ``evaluate``
all read checkpoints through these two functions. :func:`upgrade_reward` does the same for reward terms in a
config (``--config`` files and saved ``config.yaml``, read through it by the CLI).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any

from world_r1.camera import CameraConfig
from world_r1.camera.trajectory import saved_motion
from world_r1.grpo import ForwardRLConfig, GRPOConfig, SamplingConfig
from world_r1.policy import PolicyConfig, VideoSpec
from world_r1.rewards.trajectory import TRAJECTORY_FORMS

#: the dataclass behind each saved section of ``WorldR1``'s hyper-parameters
SECTIONS: dict[str, type] = {
    "policy": PolicyConfig,
    "video": VideoSpec,
    "sampling": SamplingConfig,
    "grpo": GRPOConfig,
    "camera": CameraConfig,
    "forward_rl": ForwardRLConfig,  # absent from runs saved before AWM and DiffusionNFT: None, Flow-GRPO
}

#: settings added after runs were saved, and the value those runs behaved as
_ADDED: dict[tuple[str, ...], Any] = {
    ("camera", "reinject_steps"): 0,  # before step-wise re-injection: the warped initial noise only
    ("camera", "warp"): "transport",  # before Go-with-the-Flow: the project's transport
    ("camera", "injection"): "initial",  # ... starting from the warped noise
    ("sampling", "rollout"): "sde",  # before the release's UniPC rollout
}


#: the class paths of the trajectory term before it was split by form into :data:`TRAJECTORY_FORMS`
_FORMER_TRAJECTORY = ("world_r1.rewards.TrajectoryReward", "world_r1.rewards.trajectory.TrajectoryReward")


def upgrade_reward(config: Any) -> Any:
    """``config`` (a parsed YAML tree) with every ``TrajectoryReward`` spec of before the split by form replaced by
    its form's class (``form: path`` -> ReleaseTrajectoryReward, ``shape`` -> PathShapeReward, ``flow`` or none ->
    FlowTrajectoryReward), keeping the settings that class reads (the others were unused by that form)."""
    if isinstance(config, list):
        return [upgrade_reward(item) for item in config]
    if not isinstance(config, dict):
        return config
    if str(config.get("class_path", "")) not in (*_FORMER_TRAJECTORY, "TrajectoryReward"):
        return {key: upgrade_reward(value) for key, value in config.items()}
    settings = dict(config.get("init_args") or {})
    form = settings.pop("form", "flow")
    if form == "pose":
        raise ValueError(
            "TrajectoryReward's form: pose was removed (scale-free rotation and translation direction per frame "
            "pair, fragile where travel and turning look alike): use class_path: world_r1.rewards.PathShapeReward "
            "(scale-free, on the estimated camera path) or world_r1.rewards.FlowTrajectoryReward."
        )
    if form not in TRAJECTORY_FORMS:
        raise ValueError(f"TrajectoryReward's form must be one of {sorted(TRAJECTORY_FORMS)}, got {form!r}.")
    cls = TRAJECTORY_FORMS[form]
    known = inspect.signature(cls.__init__).parameters
    init_args = {key: value for key, value in settings.items() if key in known}
    return {"class_path": f"world_r1.rewards.{cls.__name__}", "init_args": init_args}


def _plain(value: Any) -> Any:
    """``value`` with every dataclass (and namespace-like object) turned into a dict, recursively. A dataclass gives
    what its instance holds (``vars``): one unpickled from an older world-r1 lacks the fields added since, and must
    not borrow today's defaults from its class."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(item) for name, item in vars(value).items()}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if hasattr(value, "__dict__") and type(value).__name__ == "Namespace":  # jsonargparse's
        return {key: _plain(item) for key, item in vars(value).items()}
    return value


def upgrade(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Saved hyper-parameters as today's plain dicts: dataclasses become dicts, and a setting added since the run was
    saved gets the value the run behaved as (``_ADDED``; a ``camera.motion`` saved before conventions existed:
    :func:`~world_r1.camera.trajectory.saved_motion`)."""
    out = upgrade_reward(_plain(dict(hparams)))
    camera = out.get("camera")
    if isinstance(camera, dict) and isinstance(camera.get("motion"), dict):  # only what was saved is upgraded
        camera["motion"] = saved_motion(camera["motion"])
    for path, value in _ADDED.items():
        node = out
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] not in node:
            node[path[-1]] = value
    return out


def _dataclass_type(hint: Any) -> type | None:
    """The dataclass a field's type hint names (also inside ``X | None``), or None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
    return None


def build(cls: type, values: Mapping[str, Any] | Any) -> Any:
    """An instance of dataclass ``cls`` from ``values`` (a dict, or already one), nested dataclasses too; keys the
    class does not know are refused with their names (a checkpoint from a newer world-r1)."""
    if isinstance(values, cls):
        return values
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"Saved settings {unknown} are unknown to this world-r1's {cls.__name__}: the checkpoint comes from a "
            "newer version; upgrade world-r1 to read it."
        )
    kwargs = {}
    for name, value in values.items():
        inner = _dataclass_type(hints[name])
        kwargs[name] = build(inner, value) if inner is not None and isinstance(value, Mapping) else value
    return cls(**kwargs)


def module_arguments(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """``WorldR1``'s constructor arguments from saved hyper-parameters in any form (:func:`upgrade`), its sections
    built as dataclasses; Lightning's bookkeeping keys (``_instantiator``) are dropped."""
    out = {}
    for name, value in upgrade(hparams).items():
        if name.startswith("_"):
            continue
        out[name] = build(SECTIONS[name], value) if name in SECTIONS and isinstance(value, Mapping) else value
    return out
