"""Side concerns of flow-matching training: writing the model with ``save_pretrained`` and logging samples."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from world_r1.callbacks.tensorboard_media import add_gif, find_tensorboard
from world_r1.policy.vae import encode_posterior_mean
from world_r1.pretrain.manifest import git_commit, stage_record, write_manifest
from world_r1.pretrain.module import WanTrainer, vae_input
from world_r1.video_io import tile_videos


class SavePretrained(L.Callback):
    """Writes the model to ``WanTrainer.output_dir`` every ``every_n_steps`` steps (0: only at the end) and when
    training ends, with a manifest (``world_r1_manifest.json``: the command, seed, commit, settings, steps, time and
    final losses of this stage and of the stages before it). A VAE stage first measures its latent statistics (what
    the transformer stage normalises with)."""

    def __init__(self, every_n_steps: int = 0) -> None:
        """
        Args:
            every_n_steps: optimizer steps between two writes (0: write only when training ends).
        """
        if every_n_steps < 0:
            raise ValueError(f"SavePretrained.every_n_steps must be >= 0, got {every_n_steps}.")
        self.every_n_steps = every_n_steps
        self._started = time.time()
        self._commit: str | None = None
        self._saved_step: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: WanTrainer) -> None:
        self._started, self._commit = time.time(), git_commit()  # the code that runs, whatever changes meanwhile

    def save(self, trainer: L.Trainer, pl_module: WanTrainer) -> None:
        if not trainer.is_global_zero:
            return
        calibration = self.calibration_batches(trainer, pl_module) if pl_module.stage == "vae" else None
        out = pl_module.export(pl_module.hparams.output_dir, calibration)
        record = stage_record(trainer, pl_module, self._started, self._commit)
        write_manifest(out, record, previous=pl_module.hparams.model)
        self._saved_step = trainer.global_step
        rank_zero_info(f"Saved the model at step {trainer.global_step} to {out}")

    @staticmethod
    def calibration_batches(trainer: L.Trainer, pl_module: WanTrainer) -> list[torch.Tensor]:
        """The first ``vae.calibration_batches`` batches of training videos, in dataset order: a loader of its own,
        so measuring never draws from the training loader's shuffling generator (resumes stay exact)."""
        loader = trainer.train_dataloader
        ordered = DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=False)
        count = pl_module.vae_objective.calibration_batches
        return [batch["video"] for batch, _ in zip(ordered, range(count), strict=False)]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: WanTrainer, *args: Any) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.save(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: WanTrainer) -> None:
        # also after `--ckpt_path last` of a finished run, where Lightning skips the training loop and its hooks
        if self._saved_step != trainer.global_step:
            self.save(trainer, pl_module)


class LogSamples(L.Callback):
    """Every ``every_n_steps`` steps, animated GIFs in TensorBoard's Images tab: for the transformer stage, videos
    that ``WanPipeline`` generates for fixed prompts and seeds (EMA weights); for the VAE stage, input clips above
    their reconstructions."""

    def __init__(
        self,
        prompts: list[str] | None = None,
        every_n_steps: int = 500,
        num_frames: int = 9,
        height: int = 128,
        width: int = 128,
        num_inference_steps: int = 20,
        guidance_scale: float = 5.0,
        fps: int = 8,
        seed: int = 0,
    ) -> None:
        """
        Args:
            prompts: what the transformer stage generates (one video each, side by side).
            every_n_steps: optimizer steps between two logs.
            num_frames: frames of the generated videos (4k + 1).
            height: pixels, multiple of 16.
            width: pixels, multiple of 16.
            num_inference_steps: sampler steps (the pipeline's own UniPC scheduler).
            guidance_scale: classifier-free guidance of the samples.
            fps: playback rate of the GIFs.
            seed: noise seed, fixed so successive samples show the training, not the noise.
        """
        if every_n_steps < 1:
            raise ValueError(f"LogSamples.every_n_steps must be >= 1, got {every_n_steps}.")
        self.prompts = list(prompts or [])
        self.every_n_steps = every_n_steps
        self.video = {"num_frames": num_frames, "height": height, "width": width}
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.fps = fps
        self.seed = seed

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: WanTrainer, outputs: Any, batch: dict[str, Any], batch_idx: int
    ) -> None:
        logger = find_tensorboard(trainer.loggers)
        if logger is None or not trainer.is_global_zero or trainer.global_step % self.every_n_steps:
            return
        if pl_module.stage == "vae":
            video = self.reconstructions(pl_module, batch["video"][:4])
        elif self.prompts:
            video = tile_videos(self.generate(pl_module))
        else:
            return
        add_gif(logger, f"samples/{pl_module.stage}", video, trainer.global_step, self.fps)

    @torch.no_grad()
    def generate(self, pl_module: WanTrainer) -> torch.Tensor:
        """Videos ``(P, F, 3, H, W)`` in [0, 1] for the prompts, through ``WanPipeline.__call__``."""
        params = pl_module.trained_parameters()
        with pl_module.ema.swapped(params) if pl_module.ema is not None else nullcontext():
            pl_module.transformer.eval()
            frames = pl_module.pipeline()(
                prompt=self.prompts,
                negative_prompt=pl_module.flow_objective.negative_prompt,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                generator=torch.Generator(pl_module.device).manual_seed(self.seed),
                output_type="pt",
                max_sequence_length=pl_module.hparams.max_sequence_length,
                **self.video,
            ).frames
            pl_module.transformer.train()
        return frames.float().clamp(0, 1)

    @torch.no_grad()
    def reconstructions(self, pl_module: WanTrainer, videos: torch.Tensor) -> torch.Tensor:
        """Input clips (top row) above their VAE reconstructions (bottom row), ``(F, 3, 2H, W * B)``."""
        pl_module.vae.eval()
        pixels = vae_input(videos, pl_module.device, pl_module.vae.dtype)
        latents = encode_posterior_mean(pl_module.vae, pixels).to(pl_module.vae.dtype)
        decoded = pl_module.vae.decode(latents).sample
        pl_module.vae.train()
        decoded = ((decoded.float() + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4).cpu()
        return torch.cat([tile_videos(videos.float().cpu()), tile_videos(decoded)], dim=2)
