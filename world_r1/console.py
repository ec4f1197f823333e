"""A clean console: third-party notices that say nothing to a world-r1 user are dropped, narrowly, by their logger and
message (or warning module and message), so every other line of the same libraries still shows. ``python -m world_r1``
installs them before any other import (``world_r1/__main__.py``).

- transformers' notice that an image processor falls back to PIL without torchvision (world-r1 needs no torchvision);
- Lightning's tip to install its cloud logger, its device lines (``GPU available: ...``, ``TPU available: ...``), its
  "100% of the batches will be used" notice about a limit set to 1.0, and ``Seed set to N`` (the config says so);
- Lightning's own deprecation of a pytree call it makes itself (nothing a user can change);
- the model loading bars of diffusers and transformers while loading takes under :data:`LOADING_BAR_DELAY_S` seconds
  (always for the mini and tiny Wan; a real model's minutes of loading still get their bars).
"""

from __future__ import annotations

import logging
import warnings

from world_r1.compat import delay_diffusers_progress_bars

LOADING_BAR_DELAY_S = 2.0

_RANK_ZERO = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")  # Lightning's info logs
#: (logger, message fragment) of the log records dropped
NOISE: tuple[tuple[str, str], ...] = (
    ("transformers.utils.import_utils", "requires torchvision (not installed); falling back to"),
    ("lightning.fabric.utilities.seed", "Seed set to "),
    *(
        (logger, fragment)
        for logger in _RANK_ZERO
        for fragment in (
            "Tip: For seamless cloud logging",
            "GPU available: ",
            "TPU available: ",
            "was configured so 100% of the batches will be used",
        )
    ),
)
#: (message regex, category, module regex) of the warnings ignored
WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities\._pytree"),
)


class _DropNoise(logging.Filter):
    """Drops the records of one logger whose message holds ``fragment``."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def quiet_third_party_noise() -> None:
    """Install the filters (idempotent): on the loggers that emit each notice, the warning filters, and the delay
    of the loading bars."""
    for name, fragment in NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) and f.fragment == fragment for f in logger.filters):
            logger.addFilter(_DropNoise(fragment))
    for message, category, module in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    delay_loading_bars(LOADING_BAR_DELAY_S)


def delay_loading_bars(seconds: float) -> None:
    """Show the model loading bars of transformers and diffusers only once loading has taken ``seconds``."""
    from transformers.utils import logging as transformers_logging

    if hasattr(transformers_logging, "set_tqdm_hook"):  # transformers >= 5: the public hook
        transformers_logging.set_tqdm_hook(lambda factory, args, kwargs: factory(*args, **{"delay": seconds} | kwargs))
    delay_diffusers_progress_bars(seconds)
