"""A clean console: third-party tips and fallback notices that say nothing to a world-r1 user are dropped, narrowly,
by their message, so every other warning still shows.

- transformers' notice that an image processor falls back to PIL without torchvision (world-r1 needs no torchvision);
- Lightning's tip to install its cloud logger;
- Lightning's own deprecation of a pytree call it makes itself (nothing a user can change).
"""

from __future__ import annotations

import logging
import warnings

#: (logger, message fragment) of the log records dropped
NOISE: tuple[tuple[str, str], ...] = (
    ("transformers.utils.import_utils", "requires torchvision (not installed); falling back to"),
    ("lightning.pytorch.utilities.rank_zero", "Tip: For seamless cloud logging"),
)


class _DropNoise(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def quiet_third_party_noise() -> None:
    """Install the filters (idempotent): on the loggers that emit each notice, and the warning filter."""
    for name, fragment in NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) and f.fragment == fragment for f in logger.filters):
            logger.addFilter(_DropNoise(fragment))
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
