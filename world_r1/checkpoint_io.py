"""Checkpoint files: Lightning's atomic writer, with a clear error (and nothing overwritten) for unreadable files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO


class CheckedCheckpointIO(TorchCheckpointIO):
    """Loads with ``torch.load`` but turns a truncated or corrupt file into an error that names the file and the fix.

    Writing stays Lightning's: the checkpoint is serialised to memory first and committed in one filesystem
    transaction, so a crash while saving never leaves a partial ``last.ckpt``.
    """

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint {path} does not exist: pass an existing .ckpt or `--ckpt_path last`.")
        try:
            # a run's own checkpoint holds its config dataclasses (hyper-parameters), which torch's weights-only
            # unpickler refuses: unless told otherwise, load it as the trusted file it is
            weights_only = False if weights_only is None else weights_only
            return super().load_checkpoint(path, map_location or (lambda storage, loc: storage), weights_only)
        except Exception as error:
            others = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path)
            raise RuntimeError(
                f"Checkpoint {path} is unreadable ({error.__class__.__name__}: {str(error)[:200]}); it is probably "
                f"truncated or corrupt. Nothing was written or overwritten. Resume from another checkpoint "
                f"{'in ' + str(path.parent) + ': ' + ', '.join(others) if others else '(none found next to it)'}, "
                "or start afresh without --ckpt_path."
            ) from error
