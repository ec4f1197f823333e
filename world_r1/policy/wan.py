"""The Wan 2.1 policy: a frozen Wan with a LoRA adapter, exposing exactly what Flow-GRPO needs from it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import WanPipeline
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from torch import nn

from world_r1.policy import lora as lora_io
from world_r1.policy.config import DEFAULT_MODEL, LoRAConfig, PolicyConfig
from world_r1.policy.loading import load_wan_pipeline
from world_r1.policy.text_cache import PromptEmbeddingCache
from world_r1.policy.tiny import build_tiny_wan
from world_r1.settings import resolve_dtype


class WanPolicy(nn.Module):
    """Wan 2.1 text-to-video with LoRA: prompt encoding (cached), CFG velocity, VAE decode, reference switch.

    Only the LoRA parameters require grad; the text encoder and VAE are frozen. The reference policy for the KL
    term is the same transformer with the adapter disabled (:meth:`reference`), so no second copy of the weights.
    """

    def __init__(
        self,
        pipeline: WanPipeline,
        lora: LoRAConfig,
        max_sequence_length: int = 512,
        negative_prompt: str = "",
        gradient_checkpointing: bool = False,
        vae_tiling: bool = False,
        decode_batch_size: int = 1,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.transformer = pipeline.transformer
        self.vae = pipeline.vae
        self.text_encoder = pipeline.text_encoder
        self.tokenizer = pipeline.tokenizer
        self.negative_prompt = negative_prompt
        self.decode_batch_size = decode_batch_size
        # autocast dtype of the transformer; differs from the storage dtype under FSDP, which needs fp32 storage
        self.compute_dtype = compute_dtype or self.transformer.dtype
        self.vae.requires_grad_(False)
        self.text_encoder.requires_grad_(False)
        lora_io.add_lora(self.transformer, lora)
        for param in self.lora_parameters():  # optimizer state and updates in fp32, forward under autocast
            param.data = param.data.float()
        if gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        if vae_tiling:
            self.vae.enable_tiling()
        self.prompt_cache = PromptEmbeddingCache(self._encode_text, max_sequence_length)
        latents_mean = torch.tensor(self.vae.config.latents_mean).view(1, -1, 1, 1, 1)
        latents_std = torch.tensor(self.vae.config.latents_std).view(1, -1, 1, 1, 1)
        self.register_buffer("latents_mean", latents_mean, persistent=False)
        self.register_buffer("latents_std", latents_std, persistent=False)

    def train(self, mode: bool = True) -> WanPolicy:
        """Only the transformer follows ``mode``: the frozen text encoder and VAE always run in eval mode, so a
        ``module.train()`` anywhere (Lightning, a callback, user code) never turns on UMT5's dropout, which would
        corrupt the cached prompt embeddings."""
        super().train(mode)
        self.text_encoder.eval()
        self.vae.eval()
        return self

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike = DEFAULT_MODEL,
        dtype: str = "bf16",
        lora: LoRAConfig | None = None,
        compute_dtype: str | None = None,
        vae_dtype: str | None = None,
        **kwargs,
    ) -> WanPolicy:
        """Load Wan from a hub id or a local diffusers directory and attach LoRA.

        ``dtype`` is how the weights are stored, ``compute_dtype`` (default: the same) the autocast dtype of forwards,
        ``vae_dtype`` the VAE's weights and decode (default: float32 when ``dtype`` is half precision).
        """
        pipeline = load_wan_pipeline(model, resolve_dtype(dtype), resolve_dtype(vae_dtype) if vae_dtype else None)
        compute = resolve_dtype(compute_dtype) if compute_dtype else None
        return cls(pipeline, lora or LoRAConfig(), compute_dtype=compute, **kwargs)

    @classmethod
    def from_config(cls, config: PolicyConfig) -> WanPolicy:
        """The policy a :class:`PolicyConfig` describes (what a YAML's ``model.policy`` section holds)."""
        if config.build_tiny_if_missing:
            build_tiny_wan(config.model)
        return cls.from_pretrained(
            config.model,
            dtype=config.dtype,
            compute_dtype=config.compute_dtype,
            vae_dtype=config.vae_dtype,
            lora=config.lora,
            max_sequence_length=config.max_sequence_length,
            negative_prompt=config.negative_prompt,
            gradient_checkpointing=config.gradient_checkpointing,
            vae_tiling=config.vae_tiling,
            decode_batch_size=config.decode_batch_size,
        )

    # ----------------------------------------------------------------------------------------------- text
    @torch.no_grad()
    def _encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """UMT5 embeddings ``(N, L, D)`` and token counts ``(N,)``, tokenised exactly as ``WanPipeline`` does."""
        tokens = self.tokenizer(
            [prompt_clean(p) for p in prompts],
            padding="max_length",
            max_length=self.prompt_cache.max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        device = next(self.text_encoder.parameters()).device
        mask = tokens.attention_mask.to(device)
        hidden = self.text_encoder(tokens.input_ids.to(device), mask).last_hidden_state
        return hidden, mask.gt(0).sum(dim=1).cpu()

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Padded prompt embeddings ``(N, max_sequence_length, D)`` on the transformer's device, from the cache."""
        return self.prompt_cache.get(list(prompts), self.device, self.compute_dtype)

    def encode_negative(self, batch_size: int) -> torch.Tensor:
        """The negative-prompt embedding repeated ``batch_size`` times (the unconditional branch of CFG)."""
        return self.encode_prompts([self.negative_prompt]).expand(batch_size, -1, -1)

    def offload_text_encoder(self, prompts: Sequence[str] = ()) -> None:
        """Encode ``prompts`` (and the negative prompt) now, then move the text encoder to CPU for good."""
        self.prompt_cache.warm([self.negative_prompt, *prompts])
        self.text_encoder.to("cpu")

    # ----------------------------------------------------------------------------------------- transformer
    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def velocity(
        self,
        latents: torch.Tensor,
        sigma: torch.Tensor | float,
        prompt_embeds: torch.Tensor,
        negative_embeds: torch.Tensor | None = None,
        guidance_scale: float = 5.0,
    ) -> torch.Tensor:
        """Predicted velocity ``eps - x0`` (float32, shape of ``latents`` ``(B, C, T, h, w)``) with CFG.

        The conditional and unconditional branches run as one batched forward of size 2B; ``sigma`` is a float
        or ``(B,)`` tensor in [0, 1] and is passed to Wan as ``timestep = 1000 * sigma``.
        """
        batch = latents.shape[0]
        sigma = torch.as_tensor(sigma, device=latents.device, dtype=torch.float32).reshape(-1).expand(batch)
        use_cfg = negative_embeds is not None and guidance_scale != 1.0
        x = torch.cat([latents, latents]) if use_cfg else latents
        context = torch.cat([prompt_embeds, negative_embeds]) if use_cfg else prompt_embeds
        timestep = (torch.cat([sigma, sigma]) if use_cfg else sigma) * 1000.0
        with torch.autocast(x.device.type, dtype=self.compute_dtype, enabled=self.compute_dtype != torch.float32):
            out = self.transformer(
                hidden_states=x.to(self.compute_dtype),
                timestep=timestep,
                encoder_hidden_states=context.to(self.compute_dtype),
                return_dict=False,
            )[0].float()
        if not use_cfg:
            return out
        cond, uncond = out.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    @contextmanager
    def reference(self) -> Iterator[None]:
        """Run the base model: the LoRA adapter is disabled inside the block and restored after, even on error."""
        self.transformer.disable_adapters()
        try:
            yield
        finally:
            self.transformer.enable_adapters()

    # ----------------------------------------------------------------------------------------------- VAE
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode latents ``(B, C, T, h, w)`` to videos ``(B, F, 3, H, W)`` float32 in [0, 1], F = 4(T-1)+1.

        Always in the VAE's own dtype: autocast (a ``bf16-mixed`` trainer) is switched off here, so an fp32 VAE really
        decodes in fp32.
        """
        vae_dtype = next(self.vae.parameters()).dtype
        device = self.latents_std.device
        videos = []
        with torch.autocast(device.type, enabled=False):
            for chunk in latents.split(self.decode_batch_size):
                z = chunk.to(device, torch.float32) * self.latents_std + self.latents_mean
                frames = self.vae.decode(z.to(vae_dtype), return_dict=False)[0]
                videos.append(((frames.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 1, 3, 4))
        return torch.cat(videos)

    # ---------------------------------------------------------------------------------------------- LoRA
    def lora_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters: the adapter, nothing else."""
        return [p for p in self.transformer.parameters() if p.requires_grad]

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter tensors with PEFT names, detached on CPU (what checkpoints and EMA hold)."""
        return lora_io.lora_state_dict(self.transformer)

    def save_lora(self, directory: str | os.PathLike, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """Write a diffusers LoRA file loadable with ``WanPipeline.load_lora_weights(directory)``."""
        return lora_io.save_lora(self.transformer, directory, state_dict)

    def load_lora(self, path: str | os.PathLike) -> None:
        """Load a LoRA file written by :meth:`save_lora` (or any diffusers Wan LoRA of the same shape)."""
        lora_io.load_lora(self.transformer, path)
