"""An exponential moving average of a list of parameters, warmed up so early averages follow the training."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from world_r1.compat import lerp_tensors_


class ParameterEMA:
    """``average = d * average + (1 - d) * param`` with ``d = min(decay, (1 + n) / (10 + n))`` at update ``n``.

    The warm-up (the rule of ``diffusers.training_utils.EMAModel``) keeps a high decay from freezing the average near
    the random initial weights for thousands of steps: after the first update the average already moves 90 %.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {decay}.")
        self.decay = decay
        self.num_updates = 0
        self.average = [p.detach().clone().float() for p in params]

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, params: Sequence[torch.nn.Parameter]) -> None:
        decay = self.current_decay()
        lerp_tensors_(self.average, [p.detach().float() for p in params], 1.0 - decay)
        self.num_updates += 1

    @contextmanager
    def swapped(self, params: Sequence[torch.nn.Parameter]) -> Iterator[None]:
        """Run the block with the averaged weights in ``params``; the raw weights come back after, even on error."""
        raw = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, a in zip(params, self.average, strict=True):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(params, raw, strict=True):
                    p.copy_(r)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "average": [a.cpu() for a in self.average]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["average"]) != len(self.average):
            raise ValueError("the checkpoint's EMA holds another set of weights than this stage trains.")
        self.num_updates = state["num_updates"]
        self.average = [a.to(b.device, b.dtype) for a, b in zip(state["average"], self.average, strict=True)]
