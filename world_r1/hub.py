"""Loading ``transformers`` models by hub id or local folder: one check, at start-up, that the model exists."""

from __future__ import annotations

from typing import Any


def pretrained_config(model: str, role: str, example: str) -> Any:
    """The ``transformers`` config of ``model`` (hub id or directory); a missing path or repository raises
    ``FileNotFoundError`` naming the ``role`` it was meant for and an ``example`` id, before any weights load."""
    from transformers import AutoConfig  # heavy import, only where a learned model is asked for

    try:
        return AutoConfig.from_pretrained(model)
    except OSError as error:
        raise FileNotFoundError(
            f"{role} {model!r} not found ({error.__class__.__name__}): pass a hub id such as {example!r} or a local "
            "directory saved with save_pretrained."
        ) from error
