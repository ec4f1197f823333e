"""Batches of captioned clips for flow-matching training, from any map-style dataset of ``{"video", "prompt"}``."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset


class IndexedClips(Dataset):
    """``dataset[i]`` plus ``"index": i``, so the trainer can cache each clip's latents under a stable key.

    Once the trainer holds every clip's latents it sets ``index_only``: items are then just ``{"index": i}`` and the
    clips are no longer decoded or rendered. Workers see the flag from the next epoch on (they are re-created each
    epoch: no persistent workers).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.index_only = False

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"index": index} if self.index_only else {**self.dataset[index], "index": index}


class CachedClips(Dataset):
    """Keeps every item of ``dataset`` after its first read, its ``video`` as uint8 (a 9x128x128 clip takes 0.4 MB),
    so small pools of clips are rendered or decoded once instead of every epoch."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._items: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index not in self._items:
            item = dict(self.dataset[index])
            item["video"] = (item["video"].clamp(0, 1) * 255).round().to(torch.uint8)
            self._items[index] = item
        item = dict(self._items[index])
        item["video"] = item["video"].float() / 255
        return item


class ClipDataModule(L.LightningDataModule):
    """Shuffled batches ``{"video": (B, F, 3, H, W) in [0, 1], "prompt": [str] * B, ...}`` of ``train``.

    Items also carry ``"index"``, their position in ``train``. ``train`` is any dataset whose items are dicts with a
    ``video`` (F, 3, H, W) and a ``prompt``: the synthetic
    camera-motion worlds (:class:`world_r1.synthetic.SyntheticWorld`) or a folder of captioned videos
    (:class:`world_r1.pretrain.VideoFolder`); in YAML, give its ``class_path`` and ``init_args``.
    """

    def __init__(
        self, train: Dataset, batch_size: int = 8, num_workers: int = 1, seed: int = 0, cache: bool = False
    ) -> None:
        """
        Args:
            train: the training clips.
            batch_size: clips per step (per process).
            num_workers: DataLoader worker processes (clips are decoded or rendered there).
            seed: shuffling seed.
            cache: keep every clip in memory (uint8) after its first read; needs ``num_workers: 0`` (workers would
                each fill a copy and lose it every epoch).
        """
        super().__init__()
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"need batch_size >= 1 and num_workers >= 0, got {batch_size} and {num_workers}.")
        if cache and num_workers:
            raise ValueError(f"data.cache keeps clips in the main process: set data.num_workers: 0, not {num_workers}.")
        if len(train) < batch_size:
            raise ValueError(f"the training set holds {len(train)} clips, fewer than batch_size={batch_size}.")
        self.train = train
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.clips = IndexedClips(CachedClips(train) if cache else train)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.clips,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )
