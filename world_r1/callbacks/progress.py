"""Lightning's rich progress bars, right after a resume in the middle of an epoch: one labelled for Flow-GRPO runs
(training steps, the reward and the KL), one for runs over epochs of clips (pre-training, fine-tuning on videos)."""

from __future__ import annotations

from typing import Any

import lightning as L

from world_r1.compat import DescribedRichProgressBar, ResumableRichProgressBar


class StepProgressBar(DescribedRichProgressBar):
    """A run is one endless epoch of steps, so the bar says "Steps" (not "Epoch 0/-2") and drops the logger's
    version number; the module's ``reward`` and ``kl`` (logged with ``prog_bar=True``) stay on it."""

    def train_description(self) -> str:
        return "Flow-GRPO steps"

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class EpochProgressBar(ResumableRichProgressBar):
    """Lightning's rich bar as it is ("Epoch 3/9", the logged losses), whose total survives a mid-epoch resume."""
