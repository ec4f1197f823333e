"""Flow-matching training of Wan through its own diffusers classes, so the result loads anywhere Wan loads.

Two stages share one LightningModule and one pipeline directory:

- ``stage: vae`` trains ``AutoencoderKLWan`` to reconstruct frames (L1 + MSE + a small KL), then measures the
  per-channel mean and std of its latents on the training data and writes them into the VAE's config
  (``latents_mean`` / ``latents_std``), which is how every Wan pipeline normalises latents for the transformer.
- ``stage: transformer`` trains ``WanTransformer3DModel`` with rectified flow: ``x_sigma = (1 - sigma) x0 + sigma eps``
  on normalised VAE latents, target velocity ``eps - x0``, sigmas drawn uniformly and pushed toward noise by Wan's
  shift ``s sigma / (1 + (s - 1) sigma)``, ``timestep = 1000 sigma``. Prompts are dropped to the negative prompt at
  ``text_dropout`` so classifier-free guidance works. Full weights, or a LoRA (``lora``) on a real Wan.

The text encoder always stays frozen, as in Wan. Weights are written with ``save_pretrained`` (EMA weights when EMA is
on): a full pipeline for full training, a diffusers LoRA file for LoRA training.
"""

from __future__ import annotations

import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import WanPipeline

from world_r1.compat import decode_wan_unclamped
from world_r1.policy import LoRAConfig, WanSizes, build_tiny_pipeline, load_wan_pipeline, resolve_dtype, shift_sigmas
from world_r1.policy import lora as lora_io
from world_r1.policy.vae import encode_posterior_mean
from world_r1.pretrain.ema import ParameterEMA

Stage = Literal["vae", "transformer"]


@dataclass
class VAEObjective:
    """How the VAE stage samples and scores its inputs."""

    clip_share: float = 0.2  # share of steps on whole clips (the temporal path); the rest on single frames
    crop: int | None = 64  # random square crop in pixels (multiple of 16), None: whole frames
    kl_weight: float = 1e-6  # weight of the KL to N(0, 1) on the latent distribution
    anchor_weight: float = 1.0  # pull the first latent channels toward the pooled frames (see anchor_target)
    anchor_factor: int = 2  # anchor on the frames pooled 8/f times, unshuffled f x f: 3 f^2 channels (1 or 2)
    calibration_batches: int = 8  # batches used to measure the latents' mean/std at the end of training

    def __post_init__(self) -> None:
        if self.crop is not None and (self.crop < 16 or self.crop % 16):
            raise ValueError(f"vae.crop must be a multiple of 16 (or null for whole frames), got {self.crop}.")
        if not 0.0 <= self.clip_share <= 1.0:
            raise ValueError(f"vae.clip_share must be in [0, 1], got {self.clip_share}.")
        if self.anchor_weight < 0 or self.kl_weight < 0:
            raise ValueError("vae.anchor_weight and vae.kl_weight must be >= 0.")
        if self.anchor_factor not in (1, 2):
            raise ValueError(f"vae.anchor_factor must be 1 (3 channels) or 2 (12 of the 16), got {self.anchor_factor}.")


@dataclass
class FlowObjective:
    """The rectified-flow objective of the transformer stage."""

    flow_shift: float = 3.0  # Wan's sigma shift: training sigmas follow the sampling schedule's density
    text_dropout: float = 0.1  # share of prompts replaced by the negative prompt (classifier-free guidance)
    negative_prompt: str = ""  # the unconditional prompt the dropout trains

    def __post_init__(self) -> None:
        if self.flow_shift <= 0:
            raise ValueError(f"flow.flow_shift must be > 0, got {self.flow_shift}.")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ValueError(f"flow.text_dropout must be in [0, 1), got {self.text_dropout}.")


def vae_input(videos: torch.Tensor, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
    """Videos ``(B, F, 3, H, W)`` in [0, 1] as the VAE takes them: ``(B, 3, F, H, W)`` in [-1, 1]."""
    return videos.to(device, dtype).permute(0, 2, 1, 3, 4) * 2 - 1


def anchor_target(pixels: torch.Tensor, factor: int = 2, temporal: int = 4) -> torch.Tensor:
    """What the first ``3 factor^2`` latent channels start from: ``(B, 3 f^2, T, H/8, W/8)`` for pixels
    ``(B, 3, F, H, W)``. Latent frame 0 stands for pixel frame 0 and latent frame ``t`` for the ``temporal`` pixel
    frames before and at ``temporal * t`` (Wan's causal grouping), so each target is its frames' mean,
    average-pooled ``8 / f`` times and unshuffled ``f x f`` into channels."""
    count = (pixels.shape[2] - 1) // temporal
    groups = [pixels[:, :, :1]] + [pixels[:, :, 1 + temporal * t : 1 + temporal * (t + 1)] for t in range(count)]
    frames = torch.stack([g.mean(dim=2) for g in groups], dim=1)  # (B, T, 3, H, W)
    batch, steps = frames.shape[:2]
    pooled = F.pixel_unshuffle(F.avg_pool2d(frames.flatten(0, 1), 8 // factor), factor)
    return pooled.unflatten(0, (batch, steps)).transpose(1, 2)


class WanTrainer(L.LightningModule):
    """Trains one part of a Wan pipeline (VAE or transformer) on batches ``{"video": (B, F, 3, H, W), "prompt"}``."""

    def __init__(
        self,
        model: str | None = None,
        sizes: WanSizes | None = None,
        init_seed: int = 0,
        stage: Stage = "transformer",
        lora: LoRAConfig | None = None,
        dtype: str = "fp32",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        max_grad_norm: float = 1.0,
        ema_decay: float | None = 0.999,
        max_sequence_length: int = 64,
        cache_latents: bool = True,
        vae: VAEObjective | None = None,
        flow: FlowObjective | None = None,
        output_dir: str = "runs/pretrain/model",
    ) -> None:
        """
        Args:
            model: diffusers Wan directory or hub id to start from; None builds a new model of ``sizes``.
            sizes: widths of a model built from scratch (ignored when ``model`` is given).
            init_seed: initialisation seed of a model built from scratch.
            stage: ``vae`` (reconstruction) or ``transformer`` (rectified flow).
            lora: train a LoRA of this shape on the transformer instead of all its weights.
            dtype: weights of the frozen parts (bf16/fp16/fp32); trained weights are always fp32.
            lr: AdamW peak learning rate, reached after ``warmup_steps`` linear steps.
            weight_decay: AdamW weight decay.
            warmup_steps: linear learning-rate warm-up.
            max_grad_norm: gradient-norm clip.
            ema_decay: EMA of the trained weights (warmed up as ``min(decay, (1+n)/(10+n))``); None: no EMA.
            max_sequence_length: text tokens the transformer attends to (Wan: 512).
            cache_latents: transformer stage: keep each clip's latents (by dataset index, on the CPU) after its first
                encoding, so later epochs skip the VAE (~10x the transformer's cost on CPU). Needs a dataset that
                returns the same clip for the same index (both shipped datasets do).
            vae: the VAE objective.
            flow: the rectified-flow objective.
            output_dir: where ``save_pretrained`` writes the result (a pipeline, or the LoRA file).
        """
        super().__init__()
        self.save_hyperparameters()
        if stage not in ("vae", "transformer"):
            raise ValueError(f"stage must be 'vae' or 'transformer', got {stage!r}.")
        if lora is not None and stage != "transformer":
            raise ValueError("lora trains the transformer: set stage: transformer (or drop lora to train the VAE).")
        self.stage = stage
        self.vae_objective = vae or VAEObjective()
        self.flow_objective = flow or FlowObjective()
        self.strict_loading = False  # checkpoints hold only the trained weights
        pipe = load_wan_pipeline(model, resolve_dtype(dtype)) if model else build_tiny_pipeline(init_seed, sizes)
        self.tokenizer, self.scheduler = pipe.tokenizer, pipe.scheduler
        self.text_encoder, self.vae, self.transformer = pipe.text_encoder, pipe.vae, pipe.transformer
        for part in (self.text_encoder, self.vae, self.transformer):
            part.requires_grad_(False).eval()
        trained = self.vae if stage == "vae" else self.transformer
        if lora is not None:
            lora_io.add_lora(self.transformer, lora)
        else:
            trained.requires_grad_(True)
        for param in self.trained_parameters():
            param.data = param.data.float()
        trained.train()
        self.ema = ParameterEMA(self.trained_parameters(), ema_decay) if ema_decay is not None else None
        self._text_cache: dict[str, torch.Tensor] = {}
        self._latent_cache: dict[int, tuple[torch.Tensor, str]] = {}  # dataset index -> (latents, prompt)

    # --------------------------------------------------------------------------------------------- parts
    def train(self, mode: bool = True) -> WanTrainer:
        """Only the part this stage trains follows ``mode``: the frozen parts always run in eval mode, so a
        ``module.train()`` never turns on the text encoder's dropout (UMT5 has 0.1), which would corrupt cached
        prompt embeddings, nor any dropout of the frozen VAE or transformer."""
        super().train(mode)
        frozen = (self.text_encoder, self.transformer if self.stage == "vae" else self.vae)
        for part in frozen:
            part.eval()
        return self

    def trained_parameters(self) -> list[torch.nn.Parameter]:
        """The weights this stage optimises (and averages, and checkpoints)."""
        return [p for p in self.parameters() if p.requires_grad]

    def pipeline(self) -> WanPipeline:
        """The current model as a diffusers ``WanPipeline`` (shared modules, no copy)."""
        return WanPipeline(
            tokenizer=self.tokenizer,
            text_encoder=self.text_encoder,
            vae=self.vae,
            transformer=self.transformer,
            scheduler=self.scheduler,
        )

    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Wan's latent normalisation ``(mean, std)``, each ``(1, 16, 1, 1, 1)``, from the VAE config."""
        mean = torch.tensor(self.vae.config.latents_mean, device=self.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(self.vae.config.latents_std, device=self.device).view(1, -1, 1, 1, 1)
        return mean, std

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompt embeddings ``(B, max_sequence_length, D)`` exactly as ``WanPipeline.encode_prompt`` makes them,
        cached per prompt on the CPU (the text encoder is frozen)."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            embeds, _ = self.pipeline().encode_prompt(
                missing,
                do_classifier_free_guidance=False,
                max_sequence_length=self.hparams.max_sequence_length,
                device=self.device,
            )
            self._text_cache.update({p: e.float().cpu() for p, e in zip(missing, embeds, strict=True)})
        return torch.stack([self._text_cache[p] for p in prompts]).to(self.device, self.transformer.dtype)

    @torch.no_grad()
    def encode_video(self, videos: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``(B, 16, T, h, w)`` of videos ``(B, F, 3, H, W)`` in [0, 1] (the posterior mean)."""
        latents = encode_posterior_mean(self.vae, vae_input(videos, self.device, self.vae.dtype))
        mean, std = self.latent_stats()
        return (latents - mean) / std

    # -------------------------------------------------------------------------------------------- losses
    def vae_loss(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstruction losses under a random crop: of every frame as an image (Wan's causal VAE encodes single
        frames, about F times cheaper than clips) or, at ``clip_share`` of the steps, of whole clips.

        A freshly initialised Wan VAE sits at the mean colour for hundreds to thousands of steps (measured on the
        synthetic worlds: PSNR flat at 12 dB for 1,500 steps), the encoder and decoder each waiting for the other to
        carry information. The anchor term gives the latent an informative start: the first 3 f^2 channels regress
        the pooled frames (:func:`anchor_target`), which the decoder can learn to expand at once (with f = 2, 18 dB
        after 1,000 steps where the bare objective still sits at 12).
        """
        objective = self.vae_objective
        generator = torch.Generator().manual_seed(int(self.global_step))
        if torch.rand((), generator=generator) >= objective.clip_share:
            videos = videos.flatten(0, 1)[:, None]  # (B * F, 1, 3, H, W)
        if objective.crop is not None:
            height, width = videos.shape[-2:]
            top = int(torch.randint(0, max(height - objective.crop, 0) + 1, (), generator=generator))
            left = int(torch.randint(0, max(width - objective.crop, 0) + 1, (), generator=generator))
            videos = videos[..., top : top + objective.crop, left : left + objective.crop]
        pixels = vae_input(videos, self.device, self.vae.dtype)
        posterior = self.vae.encode(pixels).latent_dist
        latents = posterior.mode()
        reconstruction = decode_wan_unclamped(self.vae, latents)
        l1 = (reconstruction - pixels).abs().mean()
        mse = (reconstruction - pixels).pow(2).mean()
        kl = posterior.kl().mean() / pixels[0].numel()
        target = anchor_target(pixels, objective.anchor_factor, self.vae.config.scale_factor_temporal)
        anchor = (latents[:, : target.shape[1]] - target).pow(2).mean()
        loss = l1 + mse + objective.kl_weight * kl + objective.anchor_weight * anchor
        psnr = 10 * torch.log10(4.0 / mse.detach().clamp_min(1e-10))  # peak-to-peak 2 in [-1, 1]
        return {"loss": loss, "l1": l1, "mse": mse, "kl": kl, "anchor": anchor, "psnr": psnr}

    def batch_latents(self, batch: dict[str, Any]) -> tuple[torch.Tensor, list[str]]:
        """Normalised latents and prompts of a batch: encoded, or from the latent cache for clips seen before
        (batches of only ``index`` once every clip is cached)."""
        if not self.hparams.cache_latents or "index" not in batch:
            return self.encode_video(batch["video"].to(self.device, torch.float32)), list(batch["prompt"])
        indices = batch["index"].tolist()
        missing = [i for i, index in enumerate(indices) if index not in self._latent_cache]
        if missing:
            encoded = self.encode_video(batch["video"][missing].to(self.device, torch.float32)).cpu()
            for i, latents in zip(missing, encoded, strict=True):
                self._latent_cache[indices[i]] = (latents, batch["prompt"][i])
        rows = [self._latent_cache[index] for index in indices]
        return torch.stack([latents for latents, _ in rows]).to(self.device), [prompt for _, prompt in rows]

    def on_train_epoch_end(self) -> None:
        clips = getattr(self.trainer.datamodule, "clips", None) if self.trainer.datamodule else None
        if self.stage == "transformer" and clips is not None and len(self._latent_cache) == len(clips):
            clips.index_only = True  # every clip is cached: stop decoding/rendering them

    def flow_loss(self, x0: torch.Tensor, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Rectified-flow velocity MSE on Wan's shifted sigmas for latents ``x0``, with prompt dropout for CFG."""
        objective = self.flow_objective
        batch = x0.shape[0]
        drop = torch.rand(batch) < objective.text_dropout
        prompts = [objective.negative_prompt if d else p for p, d in zip(prompts, drop.tolist(), strict=True)]
        context = self.encode_text(prompts)
        sigma = shift_sigmas(torch.rand(batch, dtype=torch.float64), objective.flow_shift).float().to(self.device)
        noise = torch.randn_like(x0)
        s = sigma.view(-1, 1, 1, 1, 1)
        noisy = (1 - s) * x0 + s * noise
        predicted = self.transformer(
            hidden_states=noisy.to(self.transformer.dtype),
            timestep=sigma * 1000,
            encoder_hidden_states=context,
            return_dict=False,
        )[0].float()
        loss = (predicted - (noise - x0)).pow(2).mean()
        return {"loss": loss}

    # ------------------------------------------------------------------------------------------ lightning
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.stage == "vae":
            terms = self.vae_loss(batch["video"].to(self.device, torch.float32))
        else:
            terms = self.flow_loss(*self.batch_latents(batch))
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, prog_bar=True, batch_size=1)
        return terms["loss"]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        norm = torch.nn.utils.clip_grad_norm_(self.trained_parameters(), self.hparams.max_grad_norm)
        self.log("train/grad_norm", norm, batch_size=1)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update(self.trained_parameters())

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.trained_parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, betas=(0.9, 0.99)
        )
        warmup = max(1, self.hparams.warmup_steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trained weights (a LoRA on a real Wan must not drag the frozen billions along) and the EMA."""
        names = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in names}
        if self.ema is not None:
            checkpoint["ema"] = self.ema.state_dict()
        checkpoint["latent_stats"] = {k: list(self.vae.config[k]) for k in ("latents_mean", "latents_std")}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.ema is not None and "ema" in checkpoint:
            self.ema.load_state_dict(checkpoint["ema"])
        if "latent_stats" in checkpoint:
            self.vae.register_to_config(**checkpoint["latent_stats"])

    @torch.no_grad()
    def calibrate_latents(self, batches: list[torch.Tensor]) -> None:
        """Write the per-channel mean and std of the VAE's latents over ``batches`` of videos into its config, so
        pipelines normalise latents to unit variance for the transformer (Wan ships these numbers for its VAE)."""
        was_training = self.vae.training
        self.vae.eval()
        latents = []
        for videos in batches:
            pixels = vae_input(videos, self.device, self.vae.dtype)
            latents.append(encode_posterior_mean(self.vae, pixels).transpose(0, 1).flatten(1))
        stacked = torch.cat(latents, dim=1)
        mean, std = stacked.mean(dim=1), stacked.std(dim=1).clamp_min(1e-3)
        self.vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
        self.vae.train(was_training)

    def export(self, directory: str | os.PathLike, calibration: list[torch.Tensor] | None = None) -> Path:
        """Write the model (EMA weights if any) with ``save_pretrained``: the whole pipeline, or the LoRA file only.

        ``calibration`` (batches of videos) first re-measures the latent statistics (:meth:`calibrate_latents`) with
        the weights being written, so a VAE ships the statistics of its own (averaged) encoder. Written to a sibling
        folder first and swapped in, so a crash never leaves a half-written model behind.
        """
        out = Path(directory)
        partial, old = out.with_name(out.name + ".partial"), out.with_name(out.name + ".old")
        shutil.rmtree(partial, ignore_errors=True)
        params = self.trained_parameters()
        with self.ema.swapped(params) if self.ema is not None else nullcontext():
            if calibration:
                self.calibrate_latents(calibration)
            if self.hparams.lora is not None:
                lora_io.save_lora(self.transformer, partial)
            else:
                self.pipeline().save_pretrained(partial)
        if out.exists():
            out.replace(old)
        partial.replace(out)
        shutil.rmtree(old, ignore_errors=True)
        return out
