"""The advantage settings of a step, with the control covariate (``grpo.control_covariate``): the weighted
consistency terms are compared among samples of equal covariate, so a reward for 3D consistency cannot be earned by
moving the camera less. Checked against the reward when a run is built, applied at every step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from world_r1.grpo.config import GRPOConfig


def resolve_control_terms(grpo: GRPOConfig, reward: Any, decoupled_weights: Mapping[str, float] | None) -> list[str]:
    """The reward terms ``grpo.control_covariate`` controls (none without it), checked against ``reward`` (its
    ``terms`` and main-phase ``weights``) and the decoupled phase's weights: a misnamed term or key, or a phase that
    scores a controlled term but not the covariate's term (weight 0 is not scored), fails before the first rollout
    instead of at the step that needs it."""
    key = grpo.control_covariate
    if key is None:
        return []
    terms = dict(getattr(reward, "terms", {}))
    names = list(grpo.control_terms or [name for name in ("epipolar", "depth") if name in terms])
    unknown = sorted(set(names) - set(terms))
    if unknown or not names:
        raise ValueError(
            f"grpo.control_terms names {unknown or 'no term'} of model.reward, whose terms are {sorted(terms)}: "
            "name the consistency terms to compare at equal grpo.control_covariate."
        )
    source, _, raw = key.partition("/")
    worst = getattr(terms.get(source), "worst", None)
    if source not in terms or (raw and worst is not None and raw not in worst):
        keys = sorted(worst) if worst is not None else []
        raise ValueError(
            f"grpo.control_covariate {key!r} is not a reward key: use '<term>' or '<term>/<key>' with a term of "
            f"model.reward ({sorted(terms)})" + (f" and a key of {source} ({keys})." if keys else ".")
        )
    main = getattr(reward, "weights", {})
    for phase, weights in (("main", main), ("decoupled", decoupled_weights or main)):
        scored = [name for name in names if weights.get(name, 0.0)]
        if scored and not weights.get(source, 0.0):
            raise ValueError(
                f"The {phase} phase scores {scored} but not {source!r}, whose {key!r} is grpo.control_covariate: "
                f"give {source} a weight in that phase (a term of weight 0 is not scored) or drop the control."
            )
    return names


def advantage_options(
    grpo: GRPOConfig,
    control_terms: list[str],
    rewards: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of :func:`~world_r1.grpo.advantages.gather_group_rewards` for one step's ``rewards``
    scored with ``weights`` (the phase's): ``std_mode`` and ``clip``, and with ``grpo.control_covariate`` the weighted
    ``controlled`` terms (``control_terms`` that this phase scores) and the ``covariate``, on ``device``."""
    kwargs: dict[str, Any] = {"std_mode": grpo.std_mode, "clip": grpo.adv_clip}
    key = grpo.control_covariate
    terms = [name for name in control_terms if weights.get(name, 0.0) and name in rewards]
    if key is None or not terms:  # e.g. the decoupled phase: no controlled term is scored
        return kwargs
    if key not in rewards:
        raise ValueError(
            f"grpo.control_covariate {key!r} is not a reward key of this step; the keys are {sorted(rewards)}."
        )
    controlled = sum(weights[name] * rewards[name].float() for name in terms)
    return kwargs | {"controlled": controlled.to(device), "covariate": rewards[key].float().to(device)}
