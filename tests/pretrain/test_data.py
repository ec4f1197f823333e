"""Clip batches for flow-matching training: indices for the latent cache, an in-memory clip cache, clear errors."""

import pytest
import torch

from tests.helpers import bare_trainer
from world_r1.pretrain import ClipDataModule, WanTrainer
from world_r1.pretrain.data import CachedClips


class CountingClips(torch.utils.data.Dataset):
    """Four 5-frame 32x32 clips that count how often each one is read."""

    def __init__(self) -> None:
        self.reads = [0] * 4

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        self.reads[i] += 1
        video = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(i))
        return {"video": video, "prompt": f"Camera pan left. Scene {i}."}


def test_cached_clips_read_each_clip_once_and_round_to_8_bits():
    clips = CountingClips()
    cached = CachedClips(clips)
    first, again = cached[1], cached[1]
    assert clips.reads == [0, 1, 0, 0]
    assert torch.equal(first["video"], again["video"]) and first["prompt"] == again["prompt"]
    assert (first["video"] - clips[1]["video"]).abs().max() <= 0.5 / 255 + 1e-6


def test_transformer_stage_stops_reading_clips_once_their_latents_are_cached(tiny_wan_dir):
    clips = CountingClips()
    datamodule = ClipDataModule(clips, batch_size=2, num_workers=0)
    module = WanTrainer(model=tiny_wan_dir, stage="transformer", ema_decay=None)
    bare_trainer(6).fit(module, datamodule=datamodule)  # three epochs of two steps
    assert clips.reads == [1, 1, 1, 1]  # read in the first epoch only; later epochs train from cached latents
    assert datamodule.clips.index_only and len(module._latent_cache) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 8}, "fewer than batch_size=8"),
        ({"cache": True, "num_workers": 2}, "num_workers: 0"),
        ({"batch_size": 0}, "batch_size >= 1"),
    ],
)
def test_bad_settings_name_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClipDataModule(CountingClips(), **kwargs)
