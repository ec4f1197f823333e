"""The private APIs world-r1 relies on (``world_r1/compat.py``): each still exists and still does what we use it for."""

import random

import lightning as L
import torch
from diffusers import WanPipeline
from lightning.pytorch.callbacks import RichProgressBar

from world_r1 import compat
from world_r1.callbacks import StepProgressBar


def test_rng_states_round_trip():
    states = compat.collect_rng_states()
    expected = (random.random(), torch.rand(2))
    compat.set_rng_states(states)
    again = (random.random(), torch.rand(2))
    assert expected[0] == again[0] and torch.equal(expected[1], again[1])


def test_distributed_sampler_setting_is_read_from_the_trainer():
    assert compat.uses_distributed_sampler(L.Trainer(accelerator="cpu", use_distributed_sampler=False)) is False
    assert compat.uses_distributed_sampler(L.Trainer(accelerator="cpu", use_distributed_sampler=True)) is True


def test_copy_tensors_copies_in_place():
    targets, sources = [torch.zeros(3), torch.zeros(2, 2)], [torch.arange(3.0), torch.ones(2, 2)]
    kept = [t.data_ptr() for t in targets]
    compat.copy_tensors_(targets, sources)
    assert all(torch.equal(t, s) for t, s in zip(targets, sources, strict=True))
    assert [t.data_ptr() for t in targets] == kept


def test_unclamped_decode_matches_diffusers_decode_after_clamping(tiny_wan_dir):
    vae = WanPipeline.from_pretrained(tiny_wan_dir).vae
    latents = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        ours = compat.decode_wan_unclamped(vae, latents)
        theirs = vae.decode(latents).sample
    assert ours.shape == theirs.shape
    assert torch.allclose(ours.clamp(-1, 1), theirs, atol=1e-6)
    assert ours.abs().max() > 1, "values outside [-1, 1] survive: the point of the unclamped decode"


def test_the_progress_bar_shows_our_description():
    assert callable(getattr(RichProgressBar, "_get_train_description", None)), "the hook Lightning calls is gone"
    assert StepProgressBar()._get_train_description(current_epoch=0) == "Flow-GRPO steps"


def test_the_resumable_progress_bar_finds_the_task_it_corrects():
    bar = RichProgressBar()
    assert bar.progress is None and bar.train_progress_bar_id is None, "the bar's task attributes were renamed"
    assert callable(getattr(bar, "refresh", None))
