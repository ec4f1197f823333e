"""A vision-language model asked for a number: loading with start-up checks, batched greedy answers, robust parsing,
and the expected digit read off one forward pass.

Qwen-VL style models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL: one image placeholder token that the processor repeats once per
merged vision patch) are loaded by hub id or local directory through ``transformers``' ``AutoModelForImageTextToText``,
``AutoTokenizer`` and ``AutoImageProcessor``. The placeholder is expanded here rather than by the model's combined
processor, whose video half needs torchvision, which this project does not depend on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from world_r1.hub import pretrained_config
from world_r1.settings import resolve_dtype

DIGITS = "0123456789"

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


def digit_token_ids(tokenizer: Any) -> list[int]:
    """The token ids of ``'0'`` .. ``'9'``; a tokenizer that does not encode each lone digit as one token of its own
    (split, or unknown) raises, since the expected digit reads one logit per digit at the answer position."""
    ids = [tokenizer.encode(digit, add_special_tokens=False) for digit in DIGITS]
    bad = [d for d, found in zip(DIGITS, ids, strict=True) if len(found) != 1 or tokenizer.decode(found) != d]
    if bad:
        raise ValueError(f"the tokenizer does not encode the digits {bad} as one token each; use a Qwen-VL tokenizer.")
    return [found[0] for found in ids]


def _legacy_chat_template(model: str) -> str | None:
    """The template of a ``chat_template.json`` beside the tokenizer files (where processors of image-text models
    kept it), or None; the tokenizer alone does not read that file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        name = "chat_template.json"
        path = Path(model) / name if Path(model).is_dir() else hf_hub_download(model, name)
        return json.loads(Path(path).read_text())["chat_template"]
    except (OSError, ValueError, KeyError, EntryNotFoundError):  # no such file (or offline), or another layout
        return None


def load_vision_language_model(model: str, dtype: str = "bf16") -> tuple[torch.nn.Module, Any, Any]:
    """The frozen model, its tokenizer and its image processor; a missing path, a model of another kind or a tokenizer
    without a chat template (in its own files or a ``chat_template.json``) fail here, at start-up, with a message
    naming the fix."""
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer  # only for the critic

    config = pretrained_config(model, "vision-language model", "Qwen/Qwen3-VL-4B-Instruct")
    if getattr(config, "vision_config", None) is None or getattr(config, "image_token_id", None) is None:
        raise ValueError(
            f"{model!r} is a {config.model_type!r} model without an image placeholder token; the critic needs a "
            "Qwen-VL style image-text-to-text model (Qwen/Qwen3-VL-4B-Instruct, Qwen/Qwen2.5-VL-7B-Instruct)."
        )
    tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
    if tokenizer.chat_template is None:
        tokenizer.chat_template = _legacy_chat_template(model)
    if tokenizer.chat_template is None:
        raise ValueError(
            f"{model!r} has no chat template (tokenizer files or chat_template.json); use an Instruct checkpoint."
        )
    image_processor = AutoImageProcessor.from_pretrained(model)
    network = AutoModelForImageTextToText.from_pretrained(model, dtype=resolve_dtype(dtype))
    return network.eval().requires_grad_(False), tokenizer, image_processor


class VisionLanguageJudge(torch.nn.Module):
    """Asks a vision-language model one question about each of a batch of images: greedy answers (:meth:`forward`) or
    the expected digit of its first answer token (:meth:`digit_expectation`).

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
        self.image_token_id = int(self.model.config.image_token_id)
        self.placeholder = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        self.merge = int(getattr(self.model.config.vision_config, "spatial_merge_size", 1))
        size = getattr(self.image_processor, "size", None) or {}
        self.min_pixels = int(size.get("shortest_edge", 56 * 56))
        self.digit_ids = digit_token_ids(self.tokenizer)

    def prompt(self, question: str) -> str:
        """The chat-formatted text of one image followed by ``question``, ready for the assistant's answer."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if text.count(self.placeholder) != 1:
            raise ValueError(f"the chat template must place one {self.placeholder!r} per image, got {text!r}.")
        return text

    def inputs(self, images: torch.Tensor, question: str) -> dict[str, torch.Tensor]:
        """The model's keyword inputs for ``question`` about each of ``images`` (N, 3, H, W) in [0, 1], left padded.

        ``mm_token_type_ids`` (1 on image placeholders) is what the combined processor would add: without it Qwen3-VL
        refuses image inputs and Qwen2.5-VL silently falls back to 1-D text positions for the image.
        """
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
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True)
        return {
            "input_ids": encoded["input_ids"].to(device),
            "attention_mask": encoded["attention_mask"].to(device),
            "mm_token_type_ids": (encoded["input_ids"] == self.image_token_id).int().to(device),
            "pixel_values": pixels["pixel_values"].to(device, self.model.dtype),
            "image_grid_thw": grids.to(device),
        }

    @torch.no_grad()
    def forward(self, images: torch.Tensor, question: str) -> list[str]:
        """Greedy answers to ``question`` about each of ``images`` (N, 3, H, W) in [0, 1]."""
        if len(images) == 0:
            return []
        inputs = self.inputs(images, question)
        generated = self.model.generate(
            **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
        )
        return self.tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    @torch.no_grad()
    def digit_expectation(self, images: torch.Tensor, question: str) -> torch.Tensor:
        """``sum_d d * softmax(z)_d`` (N,) in [0, 9], float32 on the model's device, for each of ``images``
        (N, 3, H, W) in [0, 1]: ``z`` are the logits of the ten digit tokens ``'0'`` .. ``'9'`` at the position of the
        first answer token, from one forward pass (no generation).

        An expectation, not a parsed answer: it never fails to read, and it moves with the model's confidence between
        neighbouring ratings. The answer must start at once: a template that opens a thinking block for the assistant
        (Qwen3-VL *Thinking*) raises; use an Instruct checkpoint.
        """
        if len(images) == 0:
            return torch.zeros(0, device=next(self.model.parameters()).device)
        if "<think>" in self.prompt(question).rsplit(self.placeholder, 1)[-1]:
            raise ValueError("the chat template opens a thinking block before the answer; use an Instruct model.")
        inputs = self.inputs(images, question)
        # left padding puts every prompt's last token at the last position: its logits are the first answer token's
        logits = self.model(**inputs, use_cache=False, logits_to_keep=1).logits[:, -1]
        # fp32: a bf16 softmax over near-tied digits would quantise the expectation
        probabilities = logits[:, self.digit_ids].float().softmax(-1)
        return probabilities @ torch.arange(10, dtype=torch.float32, device=probabilities.device)
