"""open_clip's ViT CLIP checkpoints as ``transformers``' ``CLIPModel``: key by key, without importing open_clip.

open_clip imports torchvision, which this project does without; the architectures agree (pre-norm blocks, exact
GELU, class-token pooling, end-of-text pooling under a causal mask), so its state dict maps onto ``CLIPModel``'s with
the attention's joint input projection split into query, key and value and the output projections transposed. The
configuration is read off the weights' shapes (head widths, which no weight records, are arguments). HPSv2.1
(:mod:`world_r1.rewards.hps`) is such a checkpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

_BLOCK = re.compile(r"(visual\.)?transformer\.resblocks\.(\d+)\.(.+)")
_BLOCK_KEYS = {  # open_clip's ResidualAttentionBlock -> transformers' CLIPEncoderLayer (the attention is split apart)
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
_KEYS = {  # everything outside the blocks; the projections are transposed (open_clip multiplies x @ proj)
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "visual.proj": "visual_projection.weight",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "text_projection": "text_projection.weight",
    "logit_scale": "logit_scale",
}
_TRANSPOSED = {"visual.proj", "text_projection"}
_IGNORED = {"attn_mask"}  # the causal mask, a buffer some open_clip versions saved


def openclip_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The open_clip CLIP state dict in a loaded checkpoint: HPS's ``{"state_dict": ...}`` or the bare dict, with a
    ``module.`` prefix (saved from DistributedDataParallel) removed. Anything else raises, naming what was found."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise ValueError(f"expected an open_clip state dict (or a dict holding one as 'state_dict'), got {type(state)}")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    if "visual.conv1.weight" not in state or "token_embedding.weight" not in state:
        raise ValueError(
            f"not an open_clip ViT CLIP state dict (no 'visual.conv1.weight' / 'token_embedding.weight'); its first "
            f"keys are {sorted(state)[:5]}. Pass an open_clip checkpoint such as HPSv2.1's 'HPS_v2.1_compressed.pt'."
        )
    return state


def _layers(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    found = {int(m.group(2)) for key in state if (m := _BLOCK.fullmatch(key)) and (m.group(1) or "") == prefix}
    return max(found) + 1 if found else 0


def openclip_clip_config(
    state: Mapping[str, torch.Tensor], vision_head_width: int = 80, text_head_width: int = 64
) -> Any:
    """The ``transformers`` ``CLIPConfig`` of an open_clip ViT CLIP, read off its weight shapes.

    Widths, depths, MLP sizes, patch and image size, vocabulary, context length and projection size are in the
    shapes; the number of attention heads is not (the in-projection is (3 width, width) for any count), so it comes
    from the head widths: ViT-H-14's are 80 in the image tower (16 heads of 1280) and 64 in the text tower (16 of
    1024). End-of-text is the last id of the vocabulary, as in open_clip's tokenizer, whose pooling takes the argmax id.
    """
    from transformers import CLIPConfig  # heavy import, only for the learned terms

    vision_width, _, patch, _ = state["visual.conv1.weight"].shape
    grid = math.isqrt(state["visual.positional_embedding"].shape[0] - 1)
    if grid * grid + 1 != state["visual.positional_embedding"].shape[0]:
        raise ValueError("the image positional embedding is not a square grid plus a class token.")
    vocab, text_width = state["token_embedding.weight"].shape
    for name, width, head in (("vision", vision_width, vision_head_width), ("text", text_width, text_head_width)):
        if width % head:
            raise ValueError(
                f"the {name} width {width} is not a multiple of its head width {head}; pass the right one."
            )
    return CLIPConfig(
        vision_config=dict(
            hidden_size=vision_width,
            intermediate_size=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            num_hidden_layers=_layers(state, "visual."),
            num_attention_heads=vision_width // vision_head_width,
            image_size=grid * patch,
            patch_size=patch,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
        ),
        text_config=dict(
            vocab_size=vocab,
            hidden_size=text_width,
            intermediate_size=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            num_hidden_layers=_layers(state, ""),
            num_attention_heads=text_width // text_head_width,
            max_position_embeddings=state["positional_embedding"].shape[0],
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            bos_token_id=vocab - 2,
            eos_token_id=vocab - 1,
        ),
        projection_dim=state["visual.proj"].shape[1],
        logit_scale_init_value=float(state["logit_scale"]),
    )


def convert_openclip(state: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """An open_clip ViT CLIP state dict as ``transformers`` ``CLIPModel`` weights (``dtype``: cast them).

    Each block's attention in-projection (3 width, width) is split into q, k and v in that order; the image and text
    projections are transposed. A key this mapping does not know (LayerScale, attention pooling, a text-tower class
    token: open_clip variants this architecture lacks) raises rather than being dropped.
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        value = value if dtype is None else value.to(dtype)
        block = _BLOCK.fullmatch(key)
        if block:
            tower = "vision_model" if block.group(1) else "text_model"
            prefix, rest = f"{tower}.encoder.layers.{block.group(2)}.", block.group(3)
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = rest.rsplit("_", 1)[1]
                for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                    out[f"{prefix}self_attn.{name}_proj.{kind}"] = part.contiguous()
            elif rest in _BLOCK_KEYS:
                out[prefix + _BLOCK_KEYS[rest]] = value
            else:
                unknown.append(key)
        elif key in _KEYS:
            out[_KEYS[key]] = value.T.contiguous() if key in _TRANSPOSED else value
        elif key not in _IGNORED:
            unknown.append(key)
    if unknown:
        raise ValueError(f"open_clip weights this converter does not map (another architecture?): {unknown[:8]}")
    return out


def openclip_to_clip(
    state: Mapping[str, torch.Tensor],
    dtype: torch.dtype = torch.float32,
    vision_head_width: int = 80,
    text_head_width: int = 64,
) -> Any:
    """A frozen ``CLIPModel`` holding an open_clip ViT CLIP's weights, built without a random initialisation first
    (on the meta device, then the weights assigned: a ViT-H-14 would otherwise spend half a minute drawing weights
    that are overwritten). Every weight must be matched both ways (strict loading)."""
    from transformers import CLIPModel

    config = openclip_clip_config(state, vision_head_width, text_head_width)
    with torch.device("meta"):
        model = CLIPModel(config)
    model.load_state_dict(convert_openclip(state, dtype), strict=True, assign=True)
    for embeddings in (model.vision_model.embeddings, model.text_model.embeddings):  # buffers no state dict holds
        embeddings.position_ids = torch.arange(embeddings.position_embedding.num_embeddings)[None]
    left = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if left:
        raise RuntimeError(f"CLIPModel tensors not loaded from the open_clip weights: {left}")
    return model.eval().requires_grad_(False)
