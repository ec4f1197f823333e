"""CLIP-based general rewards: text-video agreement (CLIPScore) and an image-preference score of one frame (R_gen)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from world_r1.hub import pretrained_config
from world_r1.rewards.base import Reward, check_batch
from world_r1.seeding import derive_seed
from world_r1.settings import resolve_dtype

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_clip(model: str, tokenizer: str | None = None, dtype: str = "fp32") -> tuple[torch.nn.Module, Any]:
    """A frozen ``transformers`` CLIP model (hub id or directory) and its tokenizer, checked at start-up: a missing
    path or a model of another kind fails here with a message, not at the first reward."""
    from transformers import AutoTokenizer, CLIPModel  # heavy import, only for the CLIP terms

    config = pretrained_config(model, "CLIP model", "yuvalkirstain/PickScore_v1")
    if config.model_type != "clip":
        raise ValueError(
            f"{model!r} is a {config.model_type!r} model; this reward needs a CLIP-style model (CLIPModel)."
        )
    clip = CLIPModel.from_pretrained(model, dtype=resolve_dtype(dtype)).eval().requires_grad_(False)
    return clip, AutoTokenizer.from_pretrained(tokenizer or model)


class QualityReward(Reward):
    """CLIP text-video score: ``cosine = mean over num_frames evenly spaced frames of cos(image, prompt)`` and
    ``score = clip(weight * cosine, 0, 1)`` (CLIPScore, Hessel et al. 2021, uses weight 2.5).

    Frames are resized (short side) and centre-cropped to the model's image size and normalised with CLIP's
    statistics in torch, on the video's device. A 1-frame video uses its one frame. Raw terms: ``clip_cosine``
    and ``degenerate`` (1 where the cosine was not finite; the score is then 0).

    Args:
        model: hub id or local directory of a ``transformers`` CLIP model with its tokenizer.
        num_frames: frames scored per video.
        weight: CLIPScore's rescaling of the cosine.
        mean, std: image normalisation.
        tokenizer: where the tokenizer lives when not next to the model (hub id or directory).
        dtype: fp32, or bf16 / fp16 to halve the model's memory and time on a GPU.
    """

    def __init__(
        self,
        model: str = "openai/clip-vit-base-patch32",
        num_frames: int = 4,
        weight: float = 2.5,
        mean: tuple[float, float, float] = CLIP_MEAN,
        std: tuple[float, float, float] = CLIP_STD,
        tokenizer: str | None = None,
        dtype: str = "fp32",
    ) -> None:
        super().__init__()
        if num_frames < 1 or weight <= 0:
            raise ValueError("num_frames must be >= 1 and weight positive.")
        self.model, self.tokenizer = load_clip(model, tokenizer, dtype)
        self.num_frames, self.weight = num_frames, weight
        self.image_size = int(self.model.config.vision_config.image_size)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self.register_buffer("mean", torch.tensor(mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).reshape(1, 3, 1, 1), persistent=False)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> CLIP pixel values (N, 3, S, S): short side to S, centre crop, normalise."""
        height, width = frames.shape[-2:]
        scale = self.image_size / min(height, width)
        size = (max(self.image_size, round(height * scale)), max(self.image_size, round(width * scale)))
        resized = F.interpolate(frames.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
        top, left = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        crop = resized[..., top : top + self.image_size, left : left + self.image_size].clamp(0, 1)
        return ((crop - self.mean) / self.std).to(self.model.dtype)

    def embed(self, frames: torch.Tensor, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit image embeddings of ``frames`` (N, 3, H, W) and unit text embeddings of ``prompts``, float32."""
        text = self.tokenizer(
            list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(frames.device)
        out = self.model(
            input_ids=text["input_ids"], attention_mask=text["attention_mask"], pixel_values=self.preprocess(frames)
        )
        return F.normalize(out.image_embeds.float(), dim=-1), F.normalize(out.text_embeds.float(), dim=-1)

    @torch.no_grad()
    def forward(self, videos: torch.Tensor, prompts: Sequence[str], **metadata: Any) -> dict[str, torch.Tensor]:
        batch, num_frames = check_batch(videos, prompts)
        index = torch.linspace(0, num_frames - 1, min(self.num_frames, num_frames)).round().long().to(videos.device)
        image, prompt = self.embed(videos[:, index].flatten(0, 1), prompts)
        cosine = (image.reshape(batch, len(index), -1) * prompt[:, None]).sum(-1).mean(1)
        finite = torch.isfinite(cosine)
        cosine = torch.where(finite, cosine, torch.zeros_like(cosine))
        return {
            "score": (self.weight * cosine).clamp(0, 1),
            "clip_cosine": cosine,
            "degenerate": (~finite).float(),
        }


class PreferenceReward(QualityReward):
    """R_gen, World-R1's general reward: an image-preference model's score of one frame of each video.

    ``score = clip(logit_scale * cos(frame, prompt) / normalizer, 0, 1)``: PickScore (a CLIP fine-tuned on human
    preferences; its tokenizer and image settings are those of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``) divided by
    26 as Flow-GRPO does, or any CLIP checkpoint (``openai/clip-vit-large-patch14``: a CLIPScore-style preference).
    In training the frame is drawn at random for every video (seeded by the run's ``seed``, the step and the sample),
    as the release does; without a step (evaluation) it is the middle frame, so held-out scores are repeatable.
    Raw terms: ``logit`` (the model's own score), ``frame`` and ``degenerate``.

    Args:
        model: hub id or local directory of the preference model (a ``CLIPModel``).
        tokenizer: where its tokenizer lives (PickScore's is in the LAION CLIP repository).
        normalizer: the logit is divided by this (26: PickScore's usual range becomes about 0.7-0.9).
        dtype: bf16 on GPUs (the configs), fp32 on CPU.
        seed: seeds the random frame of every (step, sample).
    """

    def __init__(
        self,
        model: str = "yuvalkirstain/PickScore_v1",
        tokenizer: str | None = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        normalizer: float = 26.0,
        dtype: str = "bf16",
        seed: int = 0,
        mean: tuple[float, float, float] = CLIP_MEAN,
        std: tuple[float, float, float] = CLIP_STD,
    ) -> None:
        if normalizer <= 0:
            raise ValueError(f"normalizer must be positive, got {normalizer}.")
        super().__init__(model, num_frames=1, mean=mean, std=std, tokenizer=tokenizer, dtype=dtype)
        self.normalizer, self.seed = normalizer, seed

    def frames(self, batch: int, num_frames: int, step: int | None) -> torch.Tensor:
        """The frame scored in each video: random per (step, sample) in training, the middle one otherwise."""
        if step is None:
            return torch.full((batch,), num_frames // 2, dtype=torch.long)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "preference-frame", int(step)))
        return torch.randint(0, num_frames, (batch,), generator=generator)

    @torch.no_grad()
    def forward(
        self, videos: torch.Tensor, prompts: Sequence[str], step: int | None = None, **metadata: Any
    ) -> dict[str, torch.Tensor]:
        batch, num_frames = check_batch(videos, prompts)
        index = self.frames(batch, num_frames, step).to(videos.device)
        image, prompt = self.embed(videos[torch.arange(batch, device=videos.device), index], prompts)
        logit = self.model.logit_scale.exp().float() * (image * prompt).sum(-1)
        finite = torch.isfinite(logit)
        logit = torch.where(finite, logit, torch.zeros_like(logit))
        return {
            "score": (logit / self.normalizer).clamp(0, 1),
            "logit": logit,
            "frame": index.float(),
            "degenerate": (~finite).float(),
        }
