"""Flow-matching training of Wan: each stage lowers its loss, writes a model Wan's own classes load, and resumes."""

import shutil

import pytest
import torch
from diffusers import WanPipeline

from tests.helpers import bare_trainer
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec, WanPolicy, WanSizes, build_tiny_pipeline
from world_r1.pretrain import ClipDataModule, FlowObjective, SavePretrained, VAEObjective, WanTrainer
from world_r1.pretrain.ema import ParameterEMA
from world_r1.pretrain.module import anchor_target, vae_input
from world_r1.synthetic import render

PROMPTS = ("Camera truck right. A textured room.", "Camera fixed. A textured room.")


def mosaic_clip(seed: int, frames: int = 5, size: int = 32, cell: int = 8) -> torch.Tensor:
    """(F, 3, size, size): a mosaic of random colour cells sliding one pixel a frame, simple enough to learn fast."""
    cells = torch.rand(3, size // cell + 1, size // cell + 1, generator=torch.Generator().manual_seed(seed))
    image = cells.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    return torch.stack([image[:, :size, k : k + size] for k in range(frames)])


class Clips(torch.utils.data.Dataset):
    """Four fixed 5-frame 32x32 clips: two scenes, each with its own prompt."""

    def __init__(self) -> None:
        self.videos = [mosaic_clip(seed=s % 2) for s in range(4)]

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict:
        return {"video": self.videos[i], "prompt": PROMPTS[i % 2]}


def _fit(module: WanTrainer, steps: int, **trainer_kwargs) -> list[float]:
    losses: list[float] = []

    class Record(torch.nn.Module):  # a callback collecting the loss of every step
        pass

    import lightning as L

    class LossLog(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = bare_trainer(steps, callbacks=[LossLog(), *trainer_kwargs.pop("callbacks", [])], **trainer_kwargs)
    trainer.fit(module, datamodule=ClipDataModule(Clips(), batch_size=4, num_workers=0))
    return losses


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_vae_stage_learns_reconstruction_and_calibrates_latents(tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "model"
    module = WanTrainer(
        sizes=WanSizes(vae_base_dim=8),
        stage="vae",
        lr=3e-3,
        warmup_steps=1,
        vae=VAEObjective(clip_share=0.5, crop=None, calibration_batches=1),
        output_dir=str(out),
    )
    default_std = list(module.vae.config.latents_std)
    losses = _fit(module, 80, callbacks=[SavePretrained()])
    assert _mean(losses[-5:]) < 0.7 * _mean(losses[:5])
    pipe = WanPipeline.from_pretrained(out)
    assert list(pipe.vae.config.latents_std) != default_std
    # the saved statistics normalise the saved (EMA) encoder's latents of the clips to zero mean and unit variance
    with torch.no_grad():
        raw = pipe.vae.encode(vae_input(torch.stack(Clips().videos), "cpu", torch.float32)).latent_dist.mode()
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)
    latents = ((raw - mean) / std).transpose(0, 1).flatten(1)  # (16, values): the calibration saw exactly these clips
    torch.testing.assert_close(latents.mean(dim=1), torch.zeros(16), atol=1e-3, rtol=0)
    torch.testing.assert_close(latents.std(dim=1), torch.ones(16), atol=1e-3, rtol=0)


def test_transformer_stage_lowers_flow_loss_and_saves_a_pipeline_the_policy_loads(tmp_path, tiny_wan_dir):
    torch.manual_seed(0)
    out = tmp_path / "model"
    module = WanTrainer(
        model=tiny_wan_dir, stage="transformer", lr=3e-3, warmup_steps=1, ema_decay=0.9, output_dir=str(out)
    )
    before = [p.detach().clone() for p in module.transformer.parameters()]
    losses = _fit(module, 40, callbacks=[SavePretrained()])
    assert _mean(losses[-8:]) < 0.8 * _mean(losses[:8])
    pipe = WanPipeline.from_pretrained(out)
    saved = list(pipe.transformer.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, saved, strict=True))
    # the EMA weights are what was written
    average = module.ema.average
    assert all(torch.allclose(a, s) for a, s in zip(average, saved, strict=True))
    frames = pipe(PROMPTS[0], num_frames=5, height=32, width=32, num_inference_steps=2, output_type="pt").frames
    assert frames.shape == (1, 5, 3, 32, 32) and torch.isfinite(frames).all()
    policy = WanPolicy.from_pretrained(out, dtype="fp32", lora=LoRAConfig(rank=2, alpha=2.0))
    assert sum(p.numel() for p in policy.lora_parameters()) > 0


def test_lora_stage_trains_only_the_adapter_and_exports_a_diffusers_lora(tmp_path, tiny_wan_dir):
    torch.manual_seed(0)
    out = tmp_path / "lora"
    module = WanTrainer(
        model=tiny_wan_dir,
        stage="transformer",
        lora=LoRAConfig(rank=4, alpha=8.0),
        lr=1e-2,
        warmup_steps=1,
        ema_decay=None,
        flow=FlowObjective(text_dropout=0.0),
        output_dir=str(out),
    )
    frozen = {n: p.detach().clone() for n, p in module.transformer.named_parameters() if "lora_" not in n}
    losses = _fit(module, 3, callbacks=[SavePretrained()])
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(torch.equal(p, frozen[n]) for n, p in module.transformer.named_parameters() if n in frozen)
    lora_b = [p for n, p in module.transformer.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: the adapter was trained
    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    pipe.load_lora_weights(out)
    assert any("lora" in n for n, _ in pipe.transformer.named_parameters())


def test_checkpoint_holds_trained_weights_and_ema_and_resumes(tmp_path, tiny_wan_dir):
    torch.manual_seed(0)
    module = WanTrainer(model=tiny_wan_dir, stage="transformer", ema_decay=0.99, output_dir=str(tmp_path / "m"))
    trainer = bare_trainer(2, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=ClipDataModule(Clips(), batch_size=2, num_workers=0))
    path = tmp_path / "step2.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    assert checkpoint["state_dict"] and all(k.startswith("transformer.") for k in checkpoint["state_dict"])
    assert checkpoint["ema"]["num_updates"] == 2

    resumed = WanTrainer(model=tiny_wan_dir, stage="transformer", ema_decay=0.99, output_dir=str(tmp_path / "m"))
    trainer = bare_trainer(3)
    trainer.fit(resumed, datamodule=ClipDataModule(Clips(), batch_size=2, num_workers=0), ckpt_path=path)
    assert resumed.ema.num_updates == 3 and trainer.global_step == 3


def test_resuming_a_finished_run_still_writes_the_model(tmp_path, tiny_wan_dir):
    """``--ckpt_path last`` after the last step: Lightning skips the training loop, the export must still happen."""
    out = tmp_path / "m"
    module = WanTrainer(model=tiny_wan_dir, stage="transformer", ema_decay=0.99, output_dir=str(out))
    trainer = bare_trainer(2, default_root_dir=tmp_path, callbacks=[SavePretrained()])
    trainer.fit(module, datamodule=ClipDataModule(Clips(), batch_size=2, num_workers=0))
    trainer.save_checkpoint(tmp_path / "done.ckpt")
    assert (out / "model_index.json").is_file()
    shutil.rmtree(out)
    again = WanTrainer(model=tiny_wan_dir, stage="transformer", ema_decay=0.99, output_dir=str(out))
    trainer = bare_trainer(2, callbacks=[SavePretrained()])
    trainer.fit(
        again, datamodule=ClipDataModule(Clips(), batch_size=2, num_workers=0), ckpt_path=tmp_path / "done.ckpt"
    )
    assert trainer.global_step == 2 and (out / "model_index.json").is_file()


def test_ema_warm_up_follows_the_first_updates():
    param = torch.nn.Parameter(torch.zeros(3))
    ema = ParameterEMA([param], decay=0.999)
    with torch.no_grad():
        param.fill_(1.0)
    ema.update([param])
    assert torch.allclose(ema.average[0], torch.full((3,), 0.9))  # decay 1/10 at the first update
    with ema.swapped([param]):
        assert torch.allclose(param, torch.full((3,), 0.9))
    assert torch.equal(param.detach(), torch.ones(3))


@pytest.mark.parametrize("stage", ["vae", "transformer"])
def test_train_mode_reaches_only_the_trained_part(stage, tiny_wan_dir):
    module = WanTrainer(model=tiny_wan_dir, stage=stage)
    module.train()
    trained, frozen = (module.vae, module.transformer) if stage == "vae" else (module.transformer, module.vae)
    assert trained.training
    assert not any(m.training for part in (module.text_encoder, frozen) for m in part.modules())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stage": "decoder"}, "stage must be 'vae' or 'transformer'"),
        ({"stage": "vae", "lora": LoRAConfig()}, "lora trains the transformer"),
    ],
)
def test_bad_settings_name_the_fix(kwargs, message, tiny_wan_dir):
    with pytest.raises(ValueError, match=message):
        WanTrainer(model=tiny_wan_dir, **kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: VAEObjective(clip_share=1.5), "clip_share"),
        (lambda: VAEObjective(crop=40), "multiple of 16"),
        (lambda: FlowObjective(text_dropout=1.0), "text_dropout"),
    ],
)
def test_bad_objectives_name_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_render_is_deterministic():  # the fixture clips above must not change between calls
    a = render(torch.eye(4)[None], 16, 16, seed=1).video
    b = render(torch.eye(4)[None], 16, 16, seed=1).video
    assert torch.equal(a, b)


def test_anchor_target_follows_wans_causal_frame_groups():
    pixels = torch.arange(9.0).view(1, 1, 9, 1, 1).expand(2, 3, 9, 16, 16)  # frame k is the constant k
    target = anchor_target(pixels, factor=2)
    assert target.shape == (2, 12, 3, 2, 2)  # 3 x 2 x 2 channels, 3 latent frames, 16 / 8 pixels
    assert target[0, 0, :, 0, 0].tolist() == [0.0, 2.5, 6.5]  # frame 0, mean of 1-4, mean of 5-8
    two = anchor_target(pixels, factor=2, temporal=2)
    assert two[0, 0, :, 0, 0].tolist() == [0.0, 1.5, 3.5, 5.5, 7.5]  # frame 0, then pairs 1-2, 3-4, 5-6, 7-8


def test_two_frame_vae_generates_through_wanpipeline_and_the_policy(tmp_path):
    """A mini Wan with 2x temporal compression (``vae_temporal_factor: 2``) is still a plain diffusers Wan: the
    pipeline and the RL module size their latents from the VAE's config, not from Wan 2.1's 4x."""
    pipe = build_tiny_pipeline(0, WanSizes(vae_temporal_factor=2))
    assert pipe.vae.config.scale_factor_temporal == 2
    frames = pipe("a red box", num_frames=9, height=32, width=32, num_inference_steps=2, output_type="pt").frames
    assert frames.shape == (1, 9, 3, 32, 32)
    pipe.save_pretrained(tmp_path)
    module = WorldR1(policy=PolicyConfig(model=str(tmp_path)), video=VideoSpec(32, 32, 9))
    module.configure_model()
    assert module.sampler.starting_noise([0]).noise.shape == (1, 16, 5, 4, 4)
    with pytest.raises(ValueError, match="vae_temporal_factor"):
        WanSizes(vae_temporal_factor=3)
