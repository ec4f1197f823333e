"""The private APIs world-r1 relies on (``world_r1/compat.py``): each still exists and still does what we use it for."""

import inspect
import random

import lightning as L
import torch
from diffusers import DiffusionPipeline, WanPipeline
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


def test_lerp_tensors_moves_each_target_towards_its_source_in_place():
    targets, sources = [torch.zeros(3), torch.full((2, 2), 4.0)], [torch.ones(3), torch.zeros(2, 2)]
    kept = [t.data_ptr() for t in targets]
    compat.lerp_tensors_(targets, sources, 0.25)
    assert torch.allclose(targets[0], torch.full((3,), 0.25)) and torch.allclose(targets[1], torch.full((2, 2), 3.0))
    assert [t.data_ptr() for t in targets] == kept


def test_kornia_sift_pyramid_internals_the_native_resolution_pyramid_overrides():
    from kornia.feature.integrated import _SIFTScalePyramid

    assert list(inspect.signature(_SIFTScalePyramid._register_kernels).parameters) == ["self", "device"]
    assert list(inspect.signature(_SIFTScalePyramid._double).parameters) == ["image"]
    assert isinstance(_SIFTScalePyramid()._sigmas, list), "the per-level blurs the first octave's is set in"
    frame = torch.rand(1, 1, 64, 64)
    assert _SIFTScalePyramid()(frame)[0].shape[-1] == 128  # kornia doubles the frame first
    assert compat.native_resolution_sift_pyramid()(frame)[0].shape[-1] == 64  # ours starts at the frame's size


def test_wan_prompt_cleaning_from_diffusers_wan_pipeline():
    assert list(inspect.signature(compat.prompt_clean).parameters) == ["text"]
    assert compat.prompt_clean("  A  hall &amp; a\n door.  ") == "A hall & a door."


def test_diffusers_loading_bars_come_from_the_module_the_delay_replaces(monkeypatch):
    from diffusers.utils import logging as diffusers_logging

    assert "logging.tqdm(" in inspect.getsource(DiffusionPipeline.from_pretrained), "the pipeline's bar moved"
    monkeypatch.setattr(diffusers_logging, "tqdm_lib", diffusers_logging.tqdm_lib)  # restored after the test
    compat.delay_diffusers_progress_bars(3.0)
    bar = diffusers_logging.tqdm(range(2), desc="x")
    assert bar.delay == 3.0 and diffusers_logging.tqdm(range(2), delay=1.0).delay == 1.0  # a caller's own wins


def test_lightning_cli_private_hooks_that_world_r1_cli_overrides_and_calls():
    """``CheckpointAwareCLI`` overrides ``_parse_ckpt_path`` (reads ``--ckpt_path``'s hyper-parameters) and reads a
    config section with ``_get``: both private to LightningCLI; ``WorldR1CLI`` uses only their public names."""
    from lightning.pytorch.cli import LightningCLI

    from world_r1.cli import WorldR1CLI

    assert "_parse_ckpt_path" not in WorldR1CLI.__dict__ and "parse_ckpt_path" in WorldR1CLI.__dict__

    assert "self._parse_ckpt_path()" in inspect.getsource(LightningCLI), "LightningCLI no longer calls the hook"
    assert list(inspect.signature(LightningCLI._parse_ckpt_path).parameters) == ["self"]
    assert list(inspect.signature(LightningCLI._get).parameters) == ["self", "config", "key", "default"]
