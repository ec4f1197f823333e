"""Text-video agreement from CLIP: the general-quality term of the decoupled (dynamic-scene) phases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from world_r1.rewards.base import Reward, check_videos

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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
    """

    def __init__(
        self,
        model: str = "openai/clip-vit-base-patch32",
        num_frames: int = 4,
        weight: float = 2.5,
        mean: tuple[float, float, float] = CLIP_MEAN,
        std: tuple[float, float, float] = CLIP_STD,
    ) -> None:
        super().__init__()
        from transformers import AutoTokenizer, CLIPModel  # heavy import, only for this term

        if num_frames < 1 or weight <= 0:
            raise ValueError("num_frames must be >= 1 and weight positive.")
        self.model = CLIPModel.from_pretrained(model).eval().requires_grad_(False)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
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
        return (crop - self.mean) / self.std

    @torch.no_grad()
    def forward(self, videos: torch.Tensor, prompts: Sequence[str], **metadata: Any) -> dict[str, torch.Tensor]:
        check_videos(videos)
        batch, num_frames = videos.shape[:2]
        if len(prompts) != batch:
            raise ValueError(f"got {len(prompts)} prompts for {batch} videos")
        index = torch.linspace(0, num_frames - 1, min(self.num_frames, num_frames)).round().long().to(videos.device)
        frames = videos[:, index].flatten(0, 1)
        text = self.tokenizer(
            list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(videos.device)
        out = self.model(
            input_ids=text["input_ids"], attention_mask=text["attention_mask"], pixel_values=self.preprocess(frames)
        )
        image = F.normalize(out.image_embeds.float(), dim=-1).reshape(batch, len(index), -1)
        prompt = F.normalize(out.text_embeds.float(), dim=-1)
        cosine = (image * prompt[:, None]).sum(-1).mean(1)
        finite = torch.isfinite(cosine)
        cosine = torch.where(finite, cosine, torch.zeros_like(cosine))
        return {
            "score": (self.weight * cosine).clamp(0, 1),
            "clip_cosine": cosine,
            "degenerate": (~finite).float(),
        }
