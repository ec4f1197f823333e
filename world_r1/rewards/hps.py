"""HPSv2.1, World-R1's R_gen as released: the raw Human Preference Score of one JPEG-encoded frame of each video.

HPSv2.1 (Wu et al. 2023) is open_clip's ViT-H-14 fine-tuned on human preferences; its checkpoint
(``HPS_v2.1_compressed.pt`` in the hub repository ``xswu/HPSv2``) is an open_clip state dict, converted to
``transformers``' ``CLIPModel`` by :mod:`world_r1.rewards.openclip` (open_clip imports torchvision, which this project
does without). The tokenizer is LAION's CLIP-ViT-H-14 one from the hub, open_clip's BPE vocabulary in ``transformers``.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from world_r1.rewards.base import Reward, check_batch
from world_r1.rewards.openclip import openclip_state_dict, openclip_to_clip
from world_r1.rewards.quality import CLIP_MEAN, CLIP_STD, PreferenceReward
from world_r1.settings import resolve_dtype
from world_r1.video_io import jpeg_round_trip

log = logging.getLogger(__name__)

HPS_REPO = "xswu/HPSv2"
HPS_FILE = "HPS_v2.1_compressed.pt"
HPS_TOKENIZER = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"

_QUOTES = str.maketrans(
    dict.fromkeys("\u02bc\u2018\u2019\u201a\u201b", "'") | dict.fromkeys("\u201c\u201d\u201e\u201f", '"')
)


def checkpoint_path(checkpoint: str, filename: str = HPS_FILE) -> Path:
    """The local file of ``checkpoint``: a .pt file, a folder holding ``filename``, or a hub repository whose
    ``filename`` is downloaded (or read from the cache when offline). Missing either way raises, naming both fixes."""
    local = Path(checkpoint).expanduser()
    if local.is_file():
        return local
    if local.is_dir():
        if (local / filename).is_file():
            return local / filename
        raise FileNotFoundError(f"no {filename!r} in the folder {checkpoint!r}: pass the .pt file itself.")
    if local.suffix in (".pt", ".pth", ".bin") or checkpoint.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"HPS checkpoint {checkpoint!r} not found: pass an existing .pt file or {HPS_REPO!r}.")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(checkpoint, filename))
    except (OSError, ValueError, EntryNotFoundError) as error:  # offline and not cached, no such repo / file
        raise FileNotFoundError(
            f"HPS checkpoint {filename!r} of hub repository {checkpoint!r} unavailable ({error.__class__.__name__}): "
            f"download it once online (`hf download {checkpoint} {filename}`, then it is read from the cache with "
            f"HF_HUB_OFFLINE=1), or pass the local path of the .pt file as checkpoint."
        ) from error


def load_hps(
    checkpoint: str = HPS_REPO,
    filename: str = HPS_FILE,
    tokenizer: str = HPS_TOKENIZER,
    dtype: str = "fp32",
    vision_head_width: int = 80,
    text_head_width: int = 64,
) -> tuple[Any, Any]:
    """The HPS model (a frozen ``CLIPModel``) and its tokenizer, checked at start-up.

    Args:
        checkpoint: a local .pt file (or a folder holding ``filename``), or the hub repository holding ``filename``.
        filename: the checkpoint's name in the repository (``HPS_v2_compressed.pt`` is HPSv2.0).
        tokenizer: hub id or folder of a ``transformers`` CLIP tokenizer with open_clip's vocabulary.
        dtype: fp32, bf16 or fp16 weights.
        vision_head_width, text_head_width: attention head widths (ViT-H-14's: 80 and 64), not in the weights.
    """
    from transformers import AutoTokenizer

    path = checkpoint_path(checkpoint, filename)
    state = openclip_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    try:
        text_tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    except OSError as error:
        raise FileNotFoundError(
            f"HPS tokenizer {tokenizer!r} not found ({error.__class__.__name__}): pass a hub id such as "
            f"{HPS_TOKENIZER!r} (downloaded once online, then cached) or a local folder saved with save_pretrained."
        ) from error
    model = openclip_to_clip(state, resolve_dtype(dtype), vision_head_width, text_head_width)
    eos, vocab = model.config.text_config.eos_token_id, model.config.text_config.vocab_size
    if text_tokenizer.eos_token_id != eos or len(text_tokenizer) > vocab:
        raise ValueError(
            f"tokenizer {tokenizer!r} (end-of-text id {text_tokenizer.eos_token_id}, {len(text_tokenizer)} tokens) "
            f"does not fit the checkpoint (end-of-text {eos}, vocabulary {vocab}); pass {HPS_TOKENIZER!r}."
        )
    return model, text_tokenizer


def clean_prompt(text: str) -> str:
    """A prompt as open_clip cleans it before tokenizing (LAION's hub tokenizer does not): HTML entities unescaped
    twice, curly quotes made straight (ftfy's ``fix_text`` does that there; its repairs of mojibake and unusual
    Unicode are not copied, so only such prompts can tokenize differently), whitespace runs made one space."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text)).translate(_QUOTES)).strip()


def letterbox(images: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 3, size, size) model inputs, as hpsv2's ``score`` prepares an image (its
    ``ResizeMaxSize``, not open_clip's usual resize-and-crop): the longer side to ``size`` (bicubic, antialiased as
    torchvision resizes tensors, each side rounded, no clamp), zero (black) padding split evenly with the extra pixel
    after, then normalised with ``mean`` and ``std`` (3,) - (1, 3, 1, 1). hpsv2 skips resize and padding when the
    longer side is already ``size``, which crashes its model on a non-square image (scored 0.5); here it is padded."""
    height, width = images.shape[-2:]
    scale = size / max(height, width)
    if scale != 1.0:
        resized = (round(height * scale), round(width * scale))
        images = F.interpolate(images, size=resized, mode="bicubic", align_corners=False, antialias=True)
    pad_h, pad_w = size - images.shape[-2], size - images.shape[-1]
    images = F.pad(images, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    return (images - mean.reshape(1, 3, 1, 1)) / std.reshape(1, 3, 1, 1)


class HPSReward(Reward):
    """R_gen as World-R1 released it: HPSv2.1's raw score of one frame of each video, JPEG-encoded on the way.

    ``hps = <unit image features, unit text features>`` of the frame and the prompt (no logit scale: HPS's own
    score, about 0.2-0.35 for real images) and ``score = hps / normalizer``, so with the default 1.0 the release's
    value is added to the reward as is (it is not clipped to [0, 1]). The frame goes through the release's path: the
    8-bit JPEG trip (:func:`jpeg_round_trip`), then hpsv2's letterbox (:func:`letterbox`), then the model in
    ``dtype`` (the release ran fp32 weights under fp16 autocast).

    In training the frame is drawn at random for every video (seeded by ``seed``, the step and the sample, the same
    draw as :class:`~world_r1.rewards.PreferenceReward`); the release draws one index per reward call for the whole
    batch (``same_frame=True``). Without a step (evaluation) it is the middle frame, so held-out scores repeat.

    Failures score ``failure_score`` as the release does (0.5, above a typical HPS, so a failure is not punished)
    and are never silent: ``degenerate`` is 1, ``hps`` NaN (not measured) and a warning is logged. A sample fails
    when its frame is not finite, its JPEG trip raises, or its score is not finite. An error of the model itself (the
    whole batch) propagates, and :func:`~world_r1.rewards.base.score_safely` scores that batch 0, degenerate.

    Raw terms: ``hps``, ``frame`` (the index scored) and ``degenerate``.

    Args:
        checkpoint, filename, tokenizer: see :func:`load_hps`.
        dtype: the weights' precision; fp16 (default) is the release's arithmetic on a GPU, fp32 for exact scores.
        normalizer: the score is the raw HPS divided by this.
        seed: seeds the random frame of every (step, sample).
        jpeg_quality: PIL's JPEG quality (75: PIL's default, which the release uses).
        same_frame: one random frame index for the whole batch, as the release, instead of one per video.
        failure_score: the score of a sample that fails (the release: 0.5).
    """

    def __init__(
        self,
        checkpoint: str = HPS_REPO,
        filename: str = HPS_FILE,
        tokenizer: str = HPS_TOKENIZER,
        normalizer: float = 1.0,
        dtype: str = "fp16",
        seed: int = 0,
        jpeg_quality: int = 75,
        same_frame: bool = False,
        failure_score: float = 0.5,
    ) -> None:
        super().__init__()
        if normalizer <= 0:
            raise ValueError(f"normalizer must be positive, got {normalizer}.")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}.")
        self.model, self.tokenizer = load_hps(checkpoint, filename, tokenizer, dtype)
        self.normalizer, self.seed, self.jpeg_quality = normalizer, seed, jpeg_quality
        self.same_frame, self.failure_score = same_frame, failure_score
        self.image_size = int(self.model.config.vision_config.image_size)
        self.context_length = int(self.model.config.text_config.max_position_embeddings)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD), persistent=False)

    frames = PreferenceReward.frames  # the frame of every video: random per (seed, step, sample), else the middle

    def embed(self, images: torch.Tensor, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit image features of ``images`` (N, 3, H, W) in [0, 1] (after their JPEG trip) and unit text features
        of ``prompts``, float32. Prompts are cleaned (:func:`clean_prompt`), padded to the context length and cut to
        it with end-of-text kept last, as open_clip's tokenizer does."""
        text = self.tokenizer(
            [clean_prompt(prompt) for prompt in prompts],
            padding="max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        ).to(images.device)
        pixels = letterbox(images.float(), self.image_size, self.mean, self.std).to(self.model.dtype)
        out = self.model(input_ids=text["input_ids"], attention_mask=text["attention_mask"], pixel_values=pixels)
        return F.normalize(out.image_embeds.float(), dim=-1), F.normalize(out.text_embeds.float(), dim=-1)

    @torch.no_grad()
    def forward(
        self, videos: torch.Tensor, prompts: Sequence[str], step: int | None = None, **metadata: Any
    ) -> dict[str, torch.Tensor]:
        batch, num_frames = check_batch(videos, prompts)
        if self.same_frame:  # the release: one random.randint per reward call
            index = self.frames(1, num_frames, step).expand(batch)
        else:
            index = self.frames(batch, num_frames, step)
        hps = torch.full((batch,), float("nan"))
        images, scored = [], []
        for sample, frame in enumerate(videos[torch.arange(batch), index.to(videos.device)]):
            if not torch.isfinite(frame).all():
                log.warning("HPS: frame %d of video %d is not finite", index[sample], sample)
                continue
            try:
                images.append(jpeg_round_trip(frame, self.jpeg_quality))
            except Exception:  # the release scores a frame it cannot encode 0.5; one bad frame costs only itself
                log.exception("HPS: the JPEG trip of video %d failed", sample)
                continue
            scored.append(sample)
        if scored:
            image, text = self.embed(torch.stack(images).to(videos.device), [prompts[i] for i in scored])
            hps[scored] = (image * text).sum(-1).cpu()
        failed = ~torch.isfinite(hps)
        if failed.any():
            log.warning(
                "HPS: %d of %d samples failed, scored %s, degenerate", int(failed.sum()), batch, self.failure_score
            )
        score = torch.where(failed, torch.full_like(hps, self.failure_score), hps / self.normalizer)
        device = videos.device
        return {
            "score": score.to(device),
            "hps": hps.to(device),
            "frame": index.float().to(device),
            "degenerate": failed.float().to(device),
        }
