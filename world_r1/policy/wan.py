"""The Wan policy: a frozen Wan (2.1 or 2.2, text- or image-to-video) with LoRA, exposing what Flow-GRPO needs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.video_processor import VideoProcessor
from PIL import Image
from torch import nn

from world_r1.compat import prompt_clean
from world_r1.policy import lora as lora_io
from world_r1.policy.conditioning import ImageCondition
from world_r1.policy.config import DEFAULT_MODEL, EXPERTS, LoRAConfig, PolicyConfig, VideoSpec
from world_r1.policy.loading import load_wan_pipeline
from world_r1.policy.text_cache import PromptEmbeddingCache
from world_r1.policy.tiny import build_tiny_wan
from world_r1.policy.vae import encode_posterior_mean
from world_r1.settings import resolve_dtype


class WanPolicy(nn.Module):
    """A Wan with LoRA: prompt encoding (cached), image conditioning, CFG velocity, VAE decode, reference switch.

    Only the LoRA parameters require grad; the text encoder, VAE and image encoder are frozen. The reference policy
    for the KL term is the same transformer with the adapter disabled (:meth:`reference`), so no second copy of the
    weights. Wan 2.2's two-expert models (A14B) run ``transformer`` at timesteps >= ``boundary_ratio * 1000`` and
    ``transformer_2`` below, as ``WanPipeline`` does; ``lora.experts`` says which of them carry the adapter.
    """

    def __init__(
        self,
        pipeline: DiffusionPipeline,
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
        self.transformer_2 = getattr(pipeline, "transformer_2", None)  # Wan 2.2 A14B's low-noise expert
        self.boundary_ratio: float | None = pipeline.config.get("boundary_ratio")
        self.expand_timesteps = bool(pipeline.config.get("expand_timesteps", False))  # per-token timesteps (TI2V)
        self.vae = pipeline.vae
        self.text_encoder = pipeline.text_encoder
        self.tokenizer = pipeline.tokenizer
        self.image_encoder = getattr(pipeline, "image_encoder", None)  # CLIP of Wan2.1-I2V
        self.image_processor = getattr(pipeline, "image_processor", None)
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae.config.scale_factor_spatial)
        self.negative_prompt = negative_prompt
        self.decode_batch_size = decode_batch_size
        # autocast dtype of the transformer; differs from the storage dtype under FSDP, which needs fp32 storage
        self.compute_dtype = compute_dtype or self.transformer.dtype
        for frozen in (self.vae, self.text_encoder, self.image_encoder, self.transformer_2):
            if frozen is not None:
                frozen.requires_grad_(False)
        self.adapted = _adapted_experts(lora.experts, self.experts())
        for name in self.adapted:
            lora_io.add_lora(getattr(self, name), lora)
        for param in self.lora_parameters():  # optimizer state and updates in fp32, forward under autocast
            param.data = param.data.float()
        if gradient_checkpointing:
            for expert in self.experts().values():
                expert.enable_gradient_checkpointing()
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
        for frozen in (self.text_encoder, self.vae, self.image_encoder):
            if frozen is not None:
                frozen.eval()
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

    def experts(self) -> dict[str, nn.Module]:
        """The denoising transformers by name: ``transformer``, and ``transformer_2`` for Wan 2.2 A14B."""
        experts = {"transformer": self.transformer}
        if self.transformer_2 is not None:
            experts["transformer_2"] = self.transformer_2
        return experts

    def expert_name(self, sigma: float) -> str:
        """Which expert denoises at ``sigma``: ``transformer`` at timesteps ``1000 sigma >= 1000 boundary_ratio``
        (all of them without a second expert), ``transformer_2`` below: ``WanPipeline``'s rule."""
        if self.transformer_2 is None or self.boundary_ratio is None:
            return "transformer"
        return "transformer" if 1000.0 * sigma >= 1000.0 * self.boundary_ratio else "transformer_2"

    def trainable_runs(self, sigmas: torch.Tensor) -> list[range]:
        """The runs of consecutive steps of the schedule ``sigmas`` (N+1,) denoised by an expert with a LoRA: one run
        of all N steps for a single-transformer Wan; for a two-expert Wan the high- and/or low-noise part."""
        names = [self.expert_name(float(sigma)) for sigma in sigmas[:-1]]
        runs: list[range] = []
        start = 0
        for i in range(1, len(names) + 1):
            if i == len(names) or names[i] != names[start]:
                if names[start] in self.adapted:
                    runs.append(range(start, i))
                start = i
        return runs

    def check_video(self, video: VideoSpec) -> None:
        """Raise, naming the fix, if ``video``'s size does not fit this Wan's VAE and patch size (Wan 2.2 TI2V:
        sides divisible by 32, 16x VAE and 2x patch)."""
        spatial, temporal = self.vae.config.scale_factor_spatial, self.vae.config.scale_factor_temporal
        _, patch_h, patch_w = self.transformer.config.patch_size
        for name, side, patch in (("height", video.height, patch_h), ("width", video.width, patch_w)):
            step = spatial * patch
            if side % step:
                raise ValueError(
                    f"video.{name}={side} does not fit this Wan ({spatial}x VAE, {patch}x patch): use a multiple of "
                    f"{step}, e.g. {max(step, round(side / step) * step)}."
                )
        if (video.num_frames - 1) % temporal:
            raise ValueError(
                f"video.num_frames={video.num_frames} does not fit this Wan's {temporal}x temporal VAE: use "
                f"{temporal}k+1 frames."
            )

    @property
    def conditioning(self) -> str:
        """How the model takes an image: "channels" (Wan2.1-I2V, Wan2.2-I2V-A14B: it must get one), "first_frame"
        (Wan2.2-TI2V-5B: optional) or "none" (text-to-video only)."""
        if self.transformer.config.in_channels > self.vae.config.z_dim:
            return "channels"
        return "first_frame" if self.expand_timesteps else "none"

    def velocity(
        self,
        latents: torch.Tensor,
        sigma: torch.Tensor | float,
        prompt_embeds: torch.Tensor,
        negative_embeds: torch.Tensor | None = None,
        guidance_scale: float = 5.0,
        condition: ImageCondition | None = None,
        guidance_scale_2: float | None = None,
    ) -> torch.Tensor:
        """Predicted velocity ``eps - x0`` (float32, shape of ``latents`` ``(B, C, T, h, w)``) with CFG.

        The conditional and unconditional branches run as one batched forward of size 2B; ``sigma`` is a float
        or ``(B,)`` tensor in [0, 1] and is passed to Wan as ``timestep = 1000 * sigma`` (per token, 0 on a held
        first frame, for Wan 2.2 TI2V). ``condition`` is the image conditioning of image-to-video models;
        ``guidance_scale_2`` the CFG scale of the low-noise expert of a two-expert Wan (default ``guidance_scale``).
        """
        batch = latents.shape[0]
        sigma = torch.as_tensor(sigma, device=latents.device, dtype=torch.float32).reshape(-1).expand(batch)
        names = {self.expert_name(float(s)) for s in sigma.unique()}
        if len(names) > 1:
            raise ValueError("velocity() got sigmas on both sides of the expert boundary: call it once per expert.")
        name = names.pop()
        if name == "transformer_2" and guidance_scale_2 is not None:
            guidance_scale = guidance_scale_2
        hidden = self._model_input(latents, condition)
        timestep = self._timesteps(sigma * 1000.0, latents.shape, condition)
        use_cfg = negative_embeds is not None and guidance_scale != 1.0
        if use_cfg:
            hidden, timestep = torch.cat([hidden, hidden]), torch.cat([timestep, timestep])
            prompt_embeds = torch.cat([prompt_embeds, negative_embeds])
            condition = condition.doubled() if condition is not None else None
        image_embeds = condition.image_embeds if condition is not None else None
        dtype = self.compute_dtype
        with torch.autocast(hidden.device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = self.experts()[name](
                hidden_states=hidden.to(dtype),
                timestep=timestep,
                encoder_hidden_states=prompt_embeds.to(dtype),
                encoder_hidden_states_image=None if image_embeds is None else image_embeds.to(dtype),
                return_dict=False,
            )[0].float()
        if not use_cfg:
            return out
        cond, uncond = out.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    def _model_input(self, latents: torch.Tensor, condition: ImageCondition | None) -> torch.Tensor:
        """What the transformer reads: the latents, with the image conditioning concatenated or imposed."""
        if self.conditioning == "channels":
            if condition is None or condition.channels is None:
                raise ValueError(
                    'This Wan is an image-to-video model: every prompt needs an image (an "image" path per line of a '
                    ".jsonl prompt file, `--image` for `sample`)."
                )
            return torch.cat([latents, condition.channels.to(latents.device, latents.dtype)], dim=1)
        return condition.impose(latents) if condition is not None else latents

    def _timesteps(self, timestep: torch.Tensor, shape: torch.Size, condition: ImageCondition | None) -> torch.Tensor:
        """``(B,)`` timesteps, or ``(B, tokens)`` for models with per-token timesteps (0 on a held first frame)."""
        if not self.expand_timesteps:
            return timestep
        patch_t, patch_h, patch_w = self.transformer.config.patch_size
        grid = torch.ones(shape[2] // patch_t, shape[3] // patch_h, shape[4] // patch_w, device=timestep.device)
        if condition is not None and condition.first_frame is not None:
            grid[0] = 0.0
        return timestep[:, None] * grid.flatten()[None]

    @contextmanager
    def reference(self) -> Iterator[None]:
        """Run the base model: the LoRA adapters are disabled inside the block and restored after, even on error."""
        for name in self.adapted:
            getattr(self, name).disable_adapters()
        try:
            yield
        finally:
            for name in self.adapted:
                getattr(self, name).enable_adapters()

    # --------------------------------------------------------------------------------------- old adapter
    def add_old_adapter(self) -> None:
        """Give every adapted expert a frozen second adapter ``old``, equal to the trained one now: the lagging
        policy of DiffusionNFT (and AWM's EMA policy). Its tensors carry ``lora_`` in their names, so checkpoints
        keep them and a resumed run continues from the same old policy."""
        if self.has_old_adapter:
            return
        for name in self.adapted:
            lora_io.add_old_adapter(getattr(self, name))

    @property
    def has_old_adapter(self) -> bool:
        return any(lora_io.old_pairs(getattr(self, name)) for name in self.adapted)

    @contextmanager
    def adapter(self, name: str) -> Iterator[None]:
        """Run with adapter ``name`` (``old``) in place of the trained one, restored after, even on error."""
        if name != lora_io.ADAPTER and not self.has_old_adapter:
            raise ValueError(f"This policy has no {name!r} adapter: call add_old_adapter() first.")
        for expert in self.adapted:
            lora_io.activate(getattr(self, expert), name)
        try:
            yield
        finally:
            for expert in self.adapted:
                lora_io.activate(getattr(self, expert), lora_io.ADAPTER)

    def update_old(self, decay: float) -> None:
        """``old <- decay * old + (1 - decay) * trained``, per LoRA matrix."""
        for name in self.adapted:
            lora_io.soft_update_old(getattr(self, name), decay)

    # --------------------------------------------------------------------------------------------- images
    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image], height: int, width: int, num_frames: int) -> ImageCondition:
        """The conditioning of one video per picture, made as ``WanImageToVideoPipeline`` makes it: each picture
        resized to ``width`` x ``height`` (diffusers' video processor), VAE-encoded (mode of the posterior) and
        normalised; CLIP features of the picture for a model with an image encoder."""
        if self.conditioning == "none":
            raise ValueError(
                "This Wan is text-to-video only and takes no image: use an image-to-video model "
                "(Wan-AI/Wan2.1-I2V-14B-480P-Diffusers, Wan-AI/Wan2.2-TI2V-5B-Diffusers) or drop the images."
            )
        pixels = torch.cat([self.video_processor.preprocess(image, height=height, width=width) for image in images])
        pixels = pixels[:, :, None].to(self.latents_std.device)  # (B, 3, 1, H, W) in [-1, 1]
        if self.conditioning == "first_frame":
            return ImageCondition(first_frame=self._encode_video(pixels))
        black = pixels.new_zeros(pixels.shape[0], 3, num_frames - 1, height, width)
        latent = self._encode_video(torch.cat([pixels, black], dim=2))
        mask = torch.zeros(
            latent.shape[0], self.vae.config.scale_factor_temporal, *latent.shape[2:], device=latent.device
        )
        mask[:, :, 0] = 1.0  # the first frame is given, every later one is to be generated
        embeds = None
        if self.image_encoder is not None:
            inputs = self.image_processor(images=list(images), return_tensors="pt")
            encoder = self.image_encoder
            pixel_values = inputs.pixel_values.to(encoder.device, encoder.dtype)
            embeds = encoder(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-2].float()
        return ImageCondition(channels=torch.cat([mask, latent], dim=1), image_embeds=embeds)

    def _encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``(B, C, T, h, w)`` float32 of videos ``(B, 3, F, H, W)`` in [-1, 1]."""
        return (encode_posterior_mean(self.vae, pixels) - self.latents_mean) / self.latents_std

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
        """The trainable parameters: the adapters, nothing else (``transformer``'s first, then ``transformer_2``'s)."""
        return [p for name in self.adapted for p in getattr(self, name).parameters() if p.requires_grad]

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter tensors with PEFT names, detached on CPU (what checkpoints and EMA hold); ``transformer_2``'s keys
        start with ``transformer_2.``."""
        state = {}
        for name in self.adapted:
            prefix = "" if name == "transformer" else f"{name}."
            state |= {prefix + k: v for k, v in lora_io.lora_state_dict(getattr(self, name)).items()}
        return state

    def save_lora(self, directory: str | os.PathLike, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """Write diffusers LoRA files loadable with ``pipe.load_lora_weights(directory)``: one per adapted expert,
        ``transformer_2``'s named :data:`~world_r1.policy.lora.LORA_WEIGHT_NAME_2` (plain diffusers loads it with
        ``weight_name=...`` and ``load_into_transformer_2=True``). Returns the first file written."""
        state = state_dict if state_dict is not None else self.lora_state_dict()
        per_expert = _split_by_expert(state)
        paths = [
            lora_io.save_lora(getattr(self, name), directory, per_expert.get(name, {}), lora_io.weight_name(name))
            for name in self.adapted
        ]
        return paths[0]

    def load_lora(self, path: str | os.PathLike) -> None:
        """Load LoRA files written by :meth:`save_lora` (a folder, or the first expert's .safetensors) into the
        adapters; every adapted expert must find its file."""
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        for name in self.adapted:
            file = path if path.is_file() and name == "transformer" else folder / lora_io.weight_name(name)
            lora_io.load_lora(getattr(self, name), file)


def _split_by_expert(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """A :meth:`WanPolicy.lora_state_dict` split into each expert's own PEFT-named tensors."""
    split: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        name, rest = key.split(".", 1) if key.startswith("transformer_2.") else ("transformer", key)
        split.setdefault(name, {})[rest] = value
    return split


def _adapted_experts(requested: Sequence[str], experts: dict[str, nn.Module]) -> list[str]:
    """The experts of ``requested`` this model has (in :data:`EXPERTS` order); an error if that leaves none."""
    unknown = sorted(set(requested) - set(EXPERTS))
    if unknown:
        raise ValueError(f"lora.experts {unknown} unknown: name any of {list(EXPERTS)}.")
    adapted = [name for name in EXPERTS if name in requested and name in experts]
    if not adapted:
        raise ValueError(
            f"lora.experts={list(requested)} names no transformer of this Wan, which has {list(experts)}: "
            "use lora.experts: [transformer] (Wan 2.1, Wan 2.2 TI2V-5B)."
        )
    return adapted
