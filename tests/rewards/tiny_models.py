"""Tiny random ``transformers`` models saved with ``save_pretrained``, so tests load them through the real loading
code offline: a Depth Anything (Dinov2 backbone, patch 14), a CLIP with a byte-level tokenizer, a ResNet (the
perceptual distance's backbone), a ViT (a backbone without feature maps) and a Qwen2.5-VL that always answers the same
character."""

from pathlib import Path

import torch
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTokenizer,
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    Dinov2Config,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    ResNetConfig,
    ResNetModel,
    ViTConfig,
    ViTModel,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode


def save_tiny_depth_anything(directory: Path) -> Path:
    torch.manual_seed(0)
    backbone = Dinov2Config(
        image_size=28,
        patch_size=14,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        reassemble_factors=[1, 0.5],
        neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    DepthAnythingForDepthEstimation(config).save_pretrained(directory)
    return directory


def save_tiny_clip(directory: Path) -> Path:
    torch.manual_seed(0)
    characters = list(bytes_to_unicode().values())
    tokens = characters + [c + "</w>" for c in characters] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=8,
    )
    CLIPModel(config).save_pretrained(directory)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(directory)
    return directory


def save_tiny_resnet(directory: Path) -> Path:
    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(directory)
    return directory


def save_tiny_vit(directory: Path) -> Path:
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    ViTModel(config).save_pretrained(directory)
    return directory


QWEN_SPECIAL = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _qwen_tokenizer(tokens: list[str]) -> tuple[Qwen2Tokenizer, dict[str, int], dict[str, int]]:
    """A byte-level Qwen tokenizer of ``tokens`` (then end-of-text) with Qwen's special tokens and chat format, its
    vocabulary and the ids of the special tokens."""
    vocab = {token: index for index, token in enumerate([*tokens, "<|endoftext|>"])}
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL),
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer, vocab, {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL}


def _qwen_token_ids(vocab: dict[str, int], ids: dict[str, int]) -> dict[str, int]:
    """The token ids a Qwen-VL config names: text start/end/padding and the image, video and vision markers."""
    return {
        "bos_token_id": vocab["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": vocab["<|endoftext|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def save_tiny_qwen_vl(directory: Path, answer: str = "7") -> Path:
    """A Qwen2.5-VL with Qwen's chat format whose greedy answer is ``answer`` over and over: its final norm is zero,
    so every logit is 0 and the first token of the vocabulary, ``answer``, wins."""
    torch.manual_seed(0)
    characters = list(bytes_to_unicode().values())
    characters.remove(answer)
    tokenizer, vocab, ids = _qwen_tokenizer([answer, *characters])
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            rope_scaling={"rope_type": "default", "type": "mrope", "mrope_section": [2, 3, 3]},
        ),
        vision_config=dict(
            depth=1,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=32,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[0],
        ),
        **_qwen_token_ids(vocab, ids),
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    torch.nn.init.zeros_(model.model.language_model.norm.weight)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=112 * 112).save_pretrained(directory)
    return directory


QWEN3_VL_IMAGE_PROCESSOR = {  # Qwen/Qwen3-VL-4B-Instruct's preprocessor_config.json: patch 16, mean and std 0.5
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessorFast",
}


def save_tiny_qwen3_vl(directory: Path, digit_logits: list[float] | None = None) -> Path:
    """A Qwen3-VL (patch 16, DeepStack, interleaved M-RoPE, the released image processor settings) with Qwen's chat
    format and a byte-level vocabulary in which each digit is one token.

    Random weights by default. With ``digit_logits``, the logits at every position are those ten values on '0'..'9'
    and 0 on every other token: the layers add nothing to the residual stream (output projections zero), every token
    embeds to the unit vector e_0, the final norm scales it by ``s = 1 / sqrt(1 / H + eps)``, and the output head's
    first column holds the wanted logits divided by ``s``.
    """
    import json

    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    torch.manual_seed(0)
    tokenizer, vocab, ids = _qwen_tokenizer(list(bytes_to_unicode().values()))  # Qwen3-VL's: no system prompt either
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5e6,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            bos_token_id=vocab["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=vocab["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=32,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        ),
        **_qwen_token_ids(vocab, ids),
        tie_word_embeddings=False,
    )
    model = Qwen3VLForConditionalGeneration(config)
    if digit_logits is not None:
        text = model.model.language_model
        with torch.no_grad():
            for layer in text.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            text.embed_tokens.weight.zero_()
            text.embed_tokens.weight[:, 0] = 1.0
            text.norm.weight.fill_(1.0)
            scale = 1.0 / (1.0 / config.text_config.hidden_size + config.text_config.rms_norm_eps) ** 0.5
            model.lm_head.weight.zero_()
            digits = [vocab[digit] for digit in "0123456789"]
            model.lm_head.weight[digits, 0] = torch.tensor(digit_logits, dtype=torch.float32) / scale
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (Path(directory) / "preprocessor_config.json").write_text(json.dumps(QWEN3_VL_IMAGE_PROCESSOR))
    return directory
