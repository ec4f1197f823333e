"""Seeds derived from (run seed, purpose, step, ...) so every random draw is reproducible and resumable."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, purpose: str, *keys: int) -> int:
    """A 63-bit seed that depends only on its arguments: the same on every process, run and resume."""
    text = ":".join([str(seed), purpose, *map(str, keys)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1
