"""What every settings dataclass shares: the dtype names of the YAML and checks of ``Literal`` choices."""

from __future__ import annotations

from typing import Literal, get_args

import torch

Dtype = Literal["bf16", "fp16", "fp32"]
DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_dtype(name: str) -> torch.dtype:
    """Map 'bf16' / 'fp16' / 'fp32' to a torch dtype, with an error listing the choices."""
    if name not in DTYPES:
        raise ValueError(f"Unknown dtype {name!r}; choose one of {sorted(DTYPES)}.")
    return DTYPES[name]


def check_choice(name: str, value: object, choices: object) -> None:
    """Raise a ``ValueError`` naming ``name``, ``value`` and the allowed values of the ``Literal`` ``choices``."""
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}.")
