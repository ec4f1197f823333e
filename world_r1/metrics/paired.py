"""Paired comparison of two models on the same (prompt, seed) pairs: the statistic every "trained vs base" claim uses.

Generated videos vary far more between seeds than between a model and its fine-tune, so comparisons draw the same
initial noise on both sides and test the per-pair differences: the standard error of their mean is what a gain is
measured in.
"""

from __future__ import annotations

import math

import torch


def paired_difference(base: torch.Tensor, trained: torch.Tensor) -> dict[str, float]:
    """``{"base", "trained", "diff", "se", "z", "n"}`` over the pairs finite on both sides (NaN marks "not measured").

    ``diff`` is the mean of ``trained - base``, ``se`` its standard error and ``z = diff / se``. Differences that are
    all equal have ``se`` 0: ``z`` is 0 if they are 0 (e.g. no video froze on either side) and infinite otherwise.
    """
    if base.shape != trained.shape:
        raise ValueError(f"paired values need the same shape, got {tuple(base.shape)} and {tuple(trained.shape)}.")
    valid = torch.isfinite(base) & torch.isfinite(trained)
    n = int(valid.sum())
    if n == 0:
        return {"base": math.nan, "trained": math.nan, "diff": math.nan, "se": math.nan, "z": math.nan, "n": 0}
    diff = (trained - base)[valid].double()
    se = float(diff.std() / math.sqrt(n)) if n > 1 else math.nan
    mean = float(diff.mean())
    return {
        "base": float(base[valid].double().mean()),
        "trained": float(trained[valid].double().mean()),
        "diff": mean,
        "se": se,
        "z": mean / se if se > 0 else _exact_z(mean, n),
        "n": n,
    }


def _exact_z(mean: float, n: int) -> float:
    """``z`` of ``n`` equal differences of ``mean`` (no spread): none with one pair, else 0 or an infinite sign."""
    if n < 2:
        return math.nan
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)
