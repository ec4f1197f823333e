"""Tiny, randomly initialised Wans built offline and saved as normal diffusers model directories.

Each mirrors one real model's structure (same classes, latent channels, VAE compression, conditioning, experts), so
the demo and the tests load it through the very same ``from_pretrained`` code as the real one; only the widths are
small enough to run on a laptop CPU. The variants (:data:`TINY_VARIANTS`):

* ``wan2.1-t2v``: Wan2.1-T2V-1.3B/14B: 16 latent channels, 4x temporal / 8x spatial VAE, UMT5 text encoder;
* ``wan2.1-i2v``: Wan2.1-I2V-14B: the latents concatenated with a first-frame mask and the encoded image video
  (36 input channels), and CLIP image features in the cross-attention;
* ``wan2.2-ti2v``: Wan2.2-TI2V-5B: Wan 2.2's VAE (48 channels, 16x spatial), per-token timesteps, the first latent
  frame held to the encoded image for image-to-video;
* ``wan2.2-t2v-a14b``: Wan2.2-T2V-A14B: two experts, ``transformer`` above the noise boundary, ``transformer_2``
  below it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline, WanImageToVideoPipeline, WanPipeline, WanTransformer3DModel
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import CLIPVisionConfig, CLIPVisionModel, PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from world_r1.policy.schedule import wan_unipc_scheduler
from world_r1.prompts import prompt_texts

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
TINY_VARIANTS = ("wan2.1-t2v", "wan2.1-i2v", "wan2.2-ti2v", "wan2.2-t2v-a14b")
A14B_BOUNDARY_RATIO = 0.875  # Wan2.2-T2V-A14B's switch from the high-noise to the low-noise expert (t = 875)


_WORD = re.compile(r"\w+|[^\w\s]+")  # the split of the Whitespace pre-tokenizer below


def build_tokenizer(words: Sequence[str] | None = None) -> PreTrainedTokenizerFast:
    """A tokenizer that needs no downloaded vocabulary: byte-level (256 byte tokens + pad/eos/unk; reads any text,
    about one token a character) or, given ``words``, word-level over them (lower-cased; punctuation marks are tokens
    of their own; other words read as ``<unk>``), one token a word: a prompt of a small world becomes a short
    sequence whose tokens a small text-to-video model can tell apart."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    if words is None:
        for byte_char in sorted(pre_tokenizers.ByteLevel.alphabet()):
            vocab[byte_char] = len(vocab)
        tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
    else:
        for word in sorted({w for text in words for w in _WORD.findall(text.lower())}):
            vocab.setdefault(word, len(vocab))
        tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        tokenizer.normalizer = normalizers.Lowercase()
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _preserve_decoder_signal(vae: AutoencoderKLWan, gain: float = 2.0) -> None:
    """Re-scale the random decoder so its output depends on the latents, as a trained decoder's does.

    With the default init, a 3-channel decoder (RMS norms over 3 channels, random biases) maps every latent to
    nearly the same grey image: the gradient of mean brightness w.r.t. the latents is ~1e-5 and no reward could be
    learned through it. Doubling the weight matrices and zeroing the biases keeps the signal (gradient ~0.3, pixel
    std 0.07 -> 0.39), so the tiny model is a meaningful stand-in for learning tests and the demo.
    """
    with torch.no_grad():
        for name, param in vae.decoder.named_parameters():
            if param.ndim >= 2:
                param.mul_(gain)
            elif name.endswith("bias"):
                param.zero_()


@dataclass(frozen=True)
class WanSizes:
    """Widths of a small Wan 2.1 built from scratch; the defaults are the tiny random model of the tests and demo.

    Every other structural choice is the real model's: 16 latent channels, patch (1, 2, 2), a four-level VAE with
    ``[False, True, True]`` temporal downsampling (4x temporal, 8x spatial; ``vae_temporal_factor: 2`` keeps only
    the deepest), a UMT5 text encoder.
    """

    text_dim: int = 32  # UMT5 width (the real model: 4096)
    text_layers: int = 2  # UMT5 encoder layers
    heads: int = 2  # transformer attention heads
    head_dim: int = 12  # transformer width per head
    layers: int = 2  # transformer blocks
    ffn_dim: int = 32  # transformer feed-forward width
    vae_base_dim: int = 3  # VAE channels at full resolution
    vae_dim_mult: tuple[int, ...] = (1, 1, 1, 1)  # VAE channel multipliers of the four levels
    vae_res_blocks: int = 1  # VAE residual blocks per level
    vae_temporal_factor: int = 4  # frames per latent frame: 4 (Wan 2.1) or 2 (twice the latents, sharper motion)
    vocabulary: tuple[str, ...] = ()  # prompt files whose words make a word-level tokenizer; () byte-level

    def __post_init__(self) -> None:
        object.__setattr__(self, "vae_dim_mult", tuple(int(m) for m in self.vae_dim_mult))
        object.__setattr__(self, "vocabulary", tuple(str(v) for v in self.vocabulary))
        if len(self.vae_dim_mult) != 4:
            raise ValueError(f"vae_dim_mult needs four levels (8x spatial, 4x temporal), got {self.vae_dim_mult}.")
        if self.vae_temporal_factor not in (2, 4):
            raise ValueError(f"vae_temporal_factor must be 2 or 4 (Wan's 4k+1 frames), got {self.vae_temporal_factor}.")
        if min(self.text_dim, self.heads, self.head_dim, self.layers, self.ffn_dim, self.vae_base_dim) < 1:
            raise ValueError(f"every width in {self} must be >= 1.")


def _vocabulary_words(files: Sequence[str]) -> list[str]:
    """The prompts of ``files`` (paths or ``builtin:NAME``), whose words make the vocabulary."""
    return [text for file in files for text in prompt_texts(file)]


def _text_encoder(tokenizer: PreTrainedTokenizerFast, sizes: WanSizes, seed: int) -> UMT5EncoderModel:
    torch.manual_seed(seed)
    return UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=sizes.text_dim,
            d_kv=8,
            d_ff=2 * sizes.text_dim,
            num_layers=sizes.text_layers,
            num_heads=sizes.text_dim // 8,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
        )
    )


def build_wan_transformer(
    sizes: WanSizes, seed: int, in_channels: int, out_channels: int, **extra
) -> WanTransformer3DModel:
    """A random Wan transformer of ``sizes`` (Wan's patch and frequency settings), initialised from ``seed``."""
    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=sizes.heads,
        attention_head_dim=sizes.head_dim,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=sizes.text_dim,
        freq_dim=256,
        ffn_dim=sizes.ffn_dim,
        num_layers=sizes.layers,
        rope_max_seq_len=32,
        **extra,
    )


def _vae(sizes: WanSizes, seed: int, wan22: bool) -> AutoencoderKLWan:
    torch.manual_seed(seed)
    if wan22:  # Wan 2.2's VAE: 2x2 pixel patches in and out, residual down/up-sampling, 48 channels at 16x spatial
        return AutoencoderKLWan(
            base_dim=sizes.vae_base_dim,
            z_dim=48,
            dim_mult=list(sizes.vae_dim_mult),
            num_res_blocks=sizes.vae_res_blocks,
            temperal_downsample=[False, True, True],
            is_residual=True,
            in_channels=12,
            out_channels=12,
            patch_size=2,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
        )
    return AutoencoderKLWan(
        base_dim=sizes.vae_base_dim,
        z_dim=16,
        dim_mult=list(sizes.vae_dim_mult),
        num_res_blocks=sizes.vae_res_blocks,
        temperal_downsample=[False, sizes.vae_temporal_factor == 4, True],
        scale_factor_temporal=sizes.vae_temporal_factor,
    )


def _clip_image_encoder(seed: int) -> tuple[CLIPVisionModel, object]:
    """A small CLIP vision tower and its processor (the real: ViT-H/14 at 224 px, 1280 wide, 257 tokens)."""
    from transformers import CLIPImageProcessor  # here: importing it without torchvision prints a warning

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return CLIPVisionModel(config), processor


def build_tiny_pipeline(seed: int = 0, sizes: WanSizes | None = None, variant: str = "wan2.1-t2v") -> DiffusionPipeline:
    """All components of the ``variant`` Wan at ``sizes`` (tiny by default), initialised deterministically from
    ``seed``: a ``WanPipeline``, or a ``WanImageToVideoPipeline`` for ``wan2.1-i2v``.

    Only the default tiny model gets the signal-preserving decoder init; larger models are built to be trained.
    """
    if variant not in TINY_VARIANTS:
        raise ValueError(f"Unknown tiny Wan variant {variant!r}; choose one of {TINY_VARIANTS}.")
    sizes = sizes or WanSizes()
    tokenizer = build_tokenizer(_vocabulary_words(sizes.vocabulary) if sizes.vocabulary else None)
    text_encoder = _text_encoder(tokenizer, sizes, seed)
    vae = _vae(sizes, seed + 2, wan22=variant == "wan2.2-ti2v")
    if sizes == WanSizes():
        _preserve_decoder_signal(vae)
    channels = vae.config.z_dim
    common = {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae}
    common["scheduler"] = wan_unipc_scheduler(flow_shift=3.0)
    if variant == "wan2.1-i2v":
        image_encoder, image_processor = _clip_image_encoder(seed + 3)
        transformer = build_wan_transformer(
            sizes,
            seed + 1,
            in_channels=2 * channels + vae.config.scale_factor_temporal,  # latents + first-frame mask + image video
            out_channels=channels,
            image_dim=image_encoder.config.hidden_size,
            added_kv_proj_dim=sizes.heads * sizes.head_dim,
        )
        return WanImageToVideoPipeline(
            transformer=transformer, image_encoder=image_encoder, image_processor=image_processor, **common
        )
    transformer = build_wan_transformer(sizes, seed + 1, channels, channels)
    if variant == "wan2.2-t2v-a14b":
        low_noise = build_wan_transformer(sizes, seed + 4, channels, channels)
        return WanPipeline(
            transformer=transformer, transformer_2=low_noise, boundary_ratio=A14B_BOUNDARY_RATIO, **common
        )
    return WanPipeline(transformer=transformer, expand_timesteps=variant == "wan2.2-ti2v", **common)


def build_tiny_wan(
    out_dir: str | os.PathLike, seed: int = 0, overwrite: bool = False, variant: str = "wan2.1-t2v"
) -> Path:
    """Write a tiny Wan of ``variant`` to ``out_dir`` with ``save_pretrained`` (under 1 MiB); return the directory.

    An existing directory that already holds a model is kept as it is unless ``overwrite`` is set, so configs can
    name a fixed path and the first run builds it.
    """
    out = Path(out_dir).expanduser()
    if (out / "model_index.json").is_file() and not overwrite:
        return out
    build_tiny_pipeline(seed, variant=variant).save_pretrained(out)
    return out
