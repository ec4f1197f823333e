"""Exponential moving average of the LoRA weights only (the base model never changes, so it is never copied)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import torch

from world_r1.compat import copy_tensors_

if TYPE_CHECKING:  # for the type hints only: the module imports nothing from callbacks
    from world_r1.module import WorldR1


class LoRAEMA(L.Callback):
    """Keeps ``ema = d_n * ema + (1 - d_n) * lora`` every ``update_every`` training steps, starting from the initial
    adapter, with the warm-up of Flow-GRPO's EMA ``d_n = min(decay, (1 + n) / (10 + n))``, here counted in EMA updates
    ``n = 0, 1, ...`` (Flow-GRPO counts optimizer steps, so with ``update_every`` 8 its first update already uses
    0.47): the first update keeps 90 % of the trained weights, so an early evaluation or export is not the identity
    adapter, and the decay reaches ``decay`` after a few updates (8 for 0.9). The averaged weights are swapped in for
    validation (and by :meth:`swapped` for sampling), saved in Lightning checkpoints, and exported by
    :class:`~world_r1.callbacks.export.LoRAExport`.

    World-R1's release (``warmup: steps``, ``repeats: 24``): the warm-up counts optimizer steps ``n`` (the step just
    done), the average moves after steps where ``n + 1`` is a multiple of ``update_every``, and it moves ``repeats``
    times there with the same decay (the release's loop calls its EMA once per trained sample, 24 per process and
    epoch, toward nearly the same weights): with 0.9, 0.9^24 = 8 % of the old average survives, so it behaves close
    to a snapshot taken every ``update_every`` steps.

    Lightning's ``WeightAveraging`` keeps a deep copy of the whole module, gigabytes for Wan; this keeps only the
    adapter's tensors.
    """

    def __init__(
        self,
        decay: float = 0.9,
        update_every: int = 1,
        swap_for_validation: bool = True,
        warmup: Literal["updates", "steps"] = "updates",
        repeats: int = 1,
    ) -> None:
        """
        Args:
            decay: weight of the running average per update (Flow-GRPO uses 0.9 with updates every 8 steps).
            update_every: training steps between two EMA updates.
            swap_for_validation: evaluate with the averaged weights, then restore the raw ones.
            warmup: what ``n`` of the warm-up ``min(decay, (1 + n) / (10 + n))`` counts: EMA ``updates`` so far, or
                optimizer ``steps`` (the release: the step just done, 0-based).
            repeats: updates applied each time with the same decay (the release: 24, its samples per process).
        """
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"LoRAEMA.decay must be in [0, 1], got {decay}.")
        if update_every < 1 or repeats < 1:
            raise ValueError(f"LoRAEMA.update_every and repeats must be >= 1, got {update_every}, {repeats}.")
        if warmup not in ("updates", "steps"):
            raise ValueError(f"LoRAEMA.warmup must be 'updates' or 'steps', got {warmup!r}.")
        self.decay = decay
        self.update_every = update_every
        self.swap_for_validation = swap_for_validation
        self.warmup = warmup
        self.repeats = repeats
        self.num_updates = 0
        self._average: list[torch.Tensor] | None = None
        self._pending: list[torch.Tensor] | None = None  # restored from a checkpoint before the model exists
        self._swap: AbstractContextManager[None] | None = None  # open while validation/test runs on the average

    def current_decay(self, step: int | None = None) -> float:
        """The decay of the next update: Flow-GRPO's warm-up ``min(decay, (1 + n) / (10 + n))``, ``n`` the updates so
        far, or with ``warmup: steps`` the optimizer step just done (``step``, 0-based)."""
        n = step if self.warmup == "steps" and step is not None else self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @staticmethod
    def _params(pl_module: WorldR1) -> list[torch.nn.Parameter]:
        return pl_module.policy.lora_parameters()

    def _ensure(self, pl_module: WorldR1) -> list[torch.Tensor]:
        params = self._params(pl_module)
        if self._average is None:
            source = self._pending if self._pending is not None else [p.detach() for p in params]
            self._average = [s.to(p.device, p.dtype, copy=True) for s, p in zip(source, params, strict=True)]
            self._pending = None
        return self._average

    def on_fit_start(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        self._ensure(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: WorldR1, *args: Any) -> None:
        # `steps_done` is the module's step clock (updated by training_step), so resumed runs keep the same cadence
        if pl_module.steps_done % self.update_every == 0:
            decay = self.current_decay(pl_module.steps_done - 1)
            with torch.no_grad():
                for _ in range(self.repeats):
                    for average, param in zip(self._ensure(pl_module), self._params(pl_module), strict=True):
                        average.lerp_(param.detach(), 1.0 - decay)
            self.num_updates += 1

    @contextmanager
    def swapped(self, pl_module: WorldR1) -> Iterator[None]:
        """Run the block with the averaged weights in the model; the raw weights come back after, even on error."""
        params, average = self._params(pl_module), self._ensure(pl_module)
        raw = [p.detach().clone() for p in params]
        with torch.no_grad():
            copy_tensors_([p.data for p in params], average)
        try:
            yield
        finally:
            with torch.no_grad():
                copy_tensors_([p.data for p in params], raw)

    def averaged_lora_state_dict(self, pl_module: WorldR1) -> dict[str, torch.Tensor]:
        """The averaged adapter with PEFT names, on CPU: what :class:`LoRAExport` writes."""
        with self.swapped(pl_module):
            return pl_module.policy.lora_state_dict()

    def on_validation_start(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        # in `validate`/`test` runs too: the average comes from the checkpoint (restored before this hook)
        if self.swap_for_validation and self._swap is None:
            self._swap = self.swapped(pl_module)
            self._swap.__enter__()

    def on_validation_end(self, trainer: L.Trainer, pl_module: WorldR1) -> None:
        if self._swap is not None:
            self._swap.__exit__(None, None, None)
            self._swap = None

    on_test_start = on_validation_start
    on_test_end = on_validation_end

    def state_dict(self) -> dict[str, Any]:
        average = self._average if self._average is not None else self._pending
        return {
            "num_updates": self.num_updates,
            "average": None if average is None else [t.detach().cpu() for t in average],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_updates = state_dict["num_updates"]
        self._pending = state_dict["average"]
        self._average = None


def find_ema(trainer: L.Trainer) -> LoRAEMA | None:
    """The trainer's :class:`LoRAEMA` callback, if it has one."""
    return next((c for c in trainer.callbacks if isinstance(c, LoRAEMA)), None)
