"""The progress bars count Flow-GRPO steps (or epochs of clips), show the reward and KL, not the logger's version,
and keep a right total when a run resumes in the middle of an epoch."""

import itertools
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from world_r1.callbacks import EpochProgressBar, StepProgressBar


def test_bar_shows_reward_and_kl_without_version():
    bar = StepProgressBar()
    trainer = SimpleNamespace(loggers=[SimpleNamespace(version=3)], progress_bar_metrics={"reward": 0.5, "kl": 0.01})
    assert bar.get_metrics(trainer, None) == {"reward": 0.5, "kl": 0.01}
    assert bar._get_train_description(0) == "Flow-GRPO steps"


class _Linear(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Endless(IterableDataset):
    """As a Flow-GRPO run's prompt stream: one epoch that never ends."""

    def __iter__(self):
        return ((torch.ones(2),) for _ in itertools.count())


def _fit(bar, data, max_steps: int, root, ckpt_path=None) -> list[tuple[int, float]]:
    """Fit ``max_steps``; the bar's (position, total) after every batch."""
    seen = []

    class Spy(L.Callback):
        def on_train_batch_end(self, *args) -> None:
            task = bar.progress.tasks[bar.train_progress_bar_id]
            seen.append((int(task.completed), task.total))

    trainer = L.Trainer(
        max_steps=max_steps,
        callbacks=[bar, Spy()],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(_Linear(), data, ckpt_path=ckpt_path)
    if ckpt_path is None:
        trainer.save_checkpoint(root / "stopped.ckpt")
    return seen


@pytest.mark.parametrize(
    ("bar", "clips", "end", "expected"),
    [  # Lightning's own bar read (3, 6) ... (8, 6) for the first, (3, 2), (4, 2) for the last
        (StepProgressBar, None, 8, [(step, 8) for step in range(3, 9)]),
        (EpochProgressBar, 5, 8, [(3, 5), (4, 5), (5, 5), (1, 3), (2, 3), (3, 3)]),
        (EpochProgressBar, 5, 4, [(3, 4), (4, 4)]),
    ],
)
def test_total_is_right_after_a_resume_mid_epoch(tmp_path, bar, clips, end, expected):
    def data():
        dataset = _Endless() if clips is None else TensorDataset(torch.ones(clips, 2))
        return DataLoader(dataset, batch_size=1)

    assert _fit(bar(), data(), 2, tmp_path) == [(1, 2), (2, 2)]
    assert _fit(bar(), data(), end, tmp_path, ckpt_path=tmp_path / "stopped.ckpt") == expected
