"""What every settings dataclass shares: the dtype names of the YAML and checks of ``Literal`` choices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

import torch

Dtype = Literal["bf16", "fp16", "fp32"]
DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_dtype(name: str) -> torch.dtype:
    """Map 'bf16' / 'fp16' / 'fp32' to a torch dtype, with an error listing the choices."""
    if name not in DTYPES:
        raise ValueError(f"Unknown dtype {name!r}; choose one of {sorted(DTYPES)}.")
    return DTYPES[name]


def cpu_has_bf16_instructions(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 in hardware (x86 AVX512-BF16 or AMX, Arm's BF16), from ``/proc/cpuinfo``
    (or the given text). Without them PyTorch emulates bf16 matrix products, measured 66x slower than fp32 on an
    AVX2 CPU; where the file is missing (not Linux) the answer is no."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = {
        word
        for line in cpuinfo.splitlines()
        if re.match(r"(flags|features)\b", line, re.I)
        for word in line.split(":", 1)[-1].split()
    }
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def check_choice(name: str, value: object, choices: object) -> None:
    """Raise a ``ValueError`` naming ``name``, ``value`` and the allowed values of the ``Literal`` ``choices``."""
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}.")
