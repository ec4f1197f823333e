"""A vision-language model asked for a number: loading with start-up checks, batched greedy answers, robust parsing.

Qwen-VL style models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL: one image placeholder token that the processor repeats once per
merged vision patch) are loaded by hub id or local directory through ``transformers``' ``AutoModelForImageTextToText``,
``AutoTokenizer`` and ``AutoImageProcessor``. The placeholder is expanded here rather than by the model's combined
processor, whose video half needs torchvision, which this project does not depend on.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from world_r1.hub import pretrained_config
from world_r1.settings import resolve_dtype

_OUT_OF = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+)", re.IGNORECASE)
_LABELLED = re.compile(r"(?:score|rating|rate)\D{0,16}?(\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d.])")


def parse_score(answer: str, top: int = 9) -> float | None:
    """The score in ``answer`` on a 0..``top`` scale, or None when it holds none.

    Read, in this order: ``"7/9"`` or ``"7 out of 9"``, a number after "score" or "rating", else the first number.
    A rating on another scale (``"8/10"``), a number outside [0, top] (``"10"``), no number at all (junk, a refusal)
    or an empty answer give None, never a guess.
    """
    match = _OUT_OF.search(answer)
    if match:
        return _in_range(match.group(1), top) if int(match.group(2)) == top else None
    for pattern in (_LABELLED, _NUMBER):
        match = pattern.search(answer)
        if match:
            return _in_range(match.group(1), top)
    return None


def _in_range(text: str, top: int) -> float | None:
    value = float(text)
    return value if 0.0 <= value <= top else None


def load_vision_language_model(model: str, dtype: str = "bf16") -> tuple[torch.nn.Module, Any, Any]:
    """The frozen model, its tokenizer and its image processor; a missing path, a model of another kind or a tokenizer
    without a chat template fail here, at start-up, with a message naming the fix."""
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer  # only for the critic

    config = pretrained_config(model, "vision-language model", "Qwen/Qwen2.5-VL-7B-Instruct")
    if getattr(config, "vision_config", None) is None or getattr(config, "image_token_id", None) is None:
        raise ValueError(
            f"{model!r} is a {config.model_type!r} model without an image placeholder token; the critic needs a "
            "Qwen-VL style image-text-to-text model (Qwen/Qwen2.5-VL-7B-Instruct, Qwen/Qwen3-VL-8B-Instruct)."
        )
    tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
    if tokenizer.chat_template is None:
        raise ValueError(f"{model!r} has no chat template in its tokenizer files; use an instruction-tuned checkpoint.")
    image_processor = AutoImageProcessor.from_pretrained(model)
    network = AutoModelForImageTextToText.from_pretrained(model, dtype=resolve_dtype(dtype))
    return network.eval().requires_grad_(False), tokenizer, image_processor


class VisionLanguageJudge(torch.nn.Module):
    """Asks a vision-language model one question about each of a batch of images and returns its greedy answers.

    Args:
        model: hub id or local directory (see :func:`load_vision_language_model`).
        max_new_tokens: answer length; a score needs few tokens, and a short answer keeps the critic cheap.
        max_pixels: images are resized to at most this many pixels before patching (the processor's own limit too).
        dtype: bf16 on GPUs, fp32 on CPU.
    """

    def __init__(self, model: str, max_new_tokens: int = 8, max_pixels: int = 448 * 448, dtype: str = "bf16") -> None:
        super().__init__()
        if max_new_tokens < 1 or max_pixels < 1:
            raise ValueError("max_new_tokens and max_pixels must be >= 1.")
        self.model, self.tokenizer, self.image_processor = load_vision_language_model(model, dtype)
        self.max_new_tokens, self.max_pixels = max_new_tokens, max_pixels
        self.placeholder = self.tokenizer.convert_ids_to_tokens(int(self.model.config.image_token_id))
        self.merge = int(getattr(self.model.config.vision_config, "spatial_merge_size", 1))
        size = getattr(self.image_processor, "size", None) or {}
        self.min_pixels = int(size.get("shortest_edge", 56 * 56))

    def prompt(self, question: str) -> str:
        """The chat-formatted text of one image followed by ``question``, ready for the assistant's answer."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if text.count(self.placeholder) != 1:
            raise ValueError(f"the chat template must place one {self.placeholder!r} per image, got {text!r}.")
        return text

    @torch.no_grad()
    def forward(self, images: torch.Tensor, question: str) -> list[str]:
        """Answers to ``question`` about each of ``images`` (N, 3, H, W) in [0, 1]."""
        if len(images) == 0:
            return []
        device = next(self.model.parameters()).device
        pixels = self.image_processor(
            images=[image.permute(1, 2, 0).float().clamp(0, 1).cpu().numpy() for image in images],
            do_rescale=False,
            size={"shortest_edge": min(self.min_pixels, self.max_pixels), "longest_edge": self.max_pixels},
            return_tensors="pt",
        )
        grids = pixels["image_grid_thw"]
        text = self.prompt(question)
        texts = [text.replace(self.placeholder, self.placeholder * int(g.prod() // self.merge**2)) for g in grids]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True).to(device)
        generated = self.model.generate(
            **encoded,
            pixel_values=pixels["pixel_values"].to(device, self.model.dtype),
            image_grid_thw=grids.to(device),
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return self.tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
