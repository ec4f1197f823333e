"""HPSv2.1 (R_gen as released): the open_clip -> CLIPModel conversion against a reference forward written here in
open_clip's own formulation, the release's JPEG trip and letterbox, the frame choice, failures, and start-up errors."""

import gzip
import importlib
import io
import json
import math
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from world_r1.rewards.base import WeightedReward
from world_r1.rewards.hps import HPSReward, clean_prompt, jpeg_round_trip, letterbox, load_hps
from world_r1.rewards.openclip import convert_openclip, openclip_clip_config, openclip_state_dict
from world_r1.rewards.quality import CLIP_MEAN, CLIP_STD

VISION, TEXT = dict(width=160, heads=2, layers=2, patch=8, grid=4), dict(width=128, heads=2, layers=2, context=32)
EMBED, VOCAB = 24, 514  # the tiny CLIP tokenizer's vocabulary: bytes, bytes + </w>, start and end of text


class Block(nn.Module):
    """open_clip's ResidualAttentionBlock: pre-norm attention and MLP, sequence-first, torch's MultiheadAttention."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, 4 * width), gelu=nn.GELU(), c_proj=nn.Linear(4 * width, width))
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Tower(nn.Module):
    def __init__(self, width: int, heads: int, layers: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(Block(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.permute(1, 0, 2)  # NLD -> LND
        for block in self.resblocks:
            x = block(x, mask)
        return x.permute(1, 0, 2)


class Visual(nn.Module):
    def __init__(self, width: int, heads: int, layers: int, patch: int, grid: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.transformer = Tower(width, heads, layers)
        self.proj = nn.Parameter(torch.zeros(width, EMBED))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.conv1(image).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1]), x], dim=1)
        x = self.ln_pre(x + self.positional_embedding)
        return self.ln_post(self.transformer(x)[:, 0]) @ self.proj


class OpenClipReference(nn.Module):
    """open_clip's CLIP (ViT image tower, causal text tower pooled at the end-of-text token) with its key names."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = Visual(**VISION)
        self.transformer = Tower(TEXT["width"], TEXT["heads"], TEXT["layers"])
        self.token_embedding = nn.Embedding(VOCAB, TEXT["width"])
        self.positional_embedding = nn.Parameter(torch.zeros(TEXT["context"], TEXT["width"]))
        self.ln_final = nn.LayerNorm(TEXT["width"])
        self.text_projection = nn.Parameter(torch.zeros(TEXT["width"], EMBED))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` (N, context) padded with 0 after end-of-text, which has the largest id."""
        x = self.token_embedding(tokens) + self.positional_embedding
        mask = torch.full((tokens.shape[1], tokens.shape[1]), float("-inf")).triu(1)
        x = self.ln_final(self.transformer(x, mask))
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection


def open_clip_tokens(tokenizer, prompts: list[str]) -> torch.Tensor:
    """open_clip's token layout: start, text, end, zeros up to the context length; a longer prompt is cut to the
    context length and its last token replaced by end-of-text."""
    out = torch.zeros(len(prompts), TEXT["context"], dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids = tokenizer(prompt)["input_ids"]
        if len(ids) > TEXT["context"]:
            ids = [*ids[: TEXT["context"] - 1], tokenizer.eos_token_id]
        out[row, : len(ids)] = torch.tensor(ids)
    return out


def release_jpeg(frame: torch.Tensor) -> torch.Tensor:
    """The release's lines: ``(x * 255).round().clamp(0, 255)`` to uint8, ``save(format="JPEG")``, open, RGB, /255."""
    array = (frame * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def reference() -> OpenClipReference:
    torch.manual_seed(0)
    model = OpenClipReference().eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():  # every weight random, so a swapped key shows
            parameter.normal_(0.0, 0.1)
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight", "ln_final.weight")):
                parameter.add_(1.0)
        model.logit_scale.fill_(math.log(100.0))
    return model


@pytest.fixture(scope="module")
def tiny_hps(reference, tmp_path_factory) -> str:
    """The reference's weights saved as HPS saves them: ``{"state_dict": ...}`` in a .pt file."""
    path = tmp_path_factory.mktemp("tiny-hps") / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": reference.state_dict()}, path)
    return str(path)


def test_converted_model_gives_the_open_clip_features(reference, tiny_hps, tiny_clip):
    model, tokenizer = load_hps(tiny_hps, tokenizer=tiny_clip, dtype="fp32")
    assert model.config.vision_config.num_attention_heads == 2 and model.config.text_config.num_attention_heads == 2
    assert model.config.vision_config.image_size == 32 and model.config.text_config.max_position_embeddings == 32
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    prompts = ["a red car", "Camera pan left. A barn at dusk, in the rain, with two horses.", "x"]  # the 2nd is cut
    with torch.no_grad():
        expected_image = reference.visual(images)
        expected_text = reference.encode_text(open_clip_tokens(tokenizer, prompts))
        image = model.visual_projection(model.vision_model(pixel_values=images).pooler_output)
        text = tokenizer(prompts, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
        text = model.text_projection(model.text_model(**text).pooler_output)
    torch.testing.assert_close(image, expected_image, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(text, expected_text, rtol=1e-5, atol=1e-5)
    assert expected_text.std() > 0.1 and expected_image.std() > 0.1  # features that a wrong key would change


def test_reward_is_the_reference_cosine_of_the_jpeg_round_tripped_middle_frame(reference, tiny_hps, tiny_clip):
    reward = HPSReward(tiny_hps, tokenizer=tiny_clip, dtype="fp32")
    videos = torch.rand(3, 5, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    prompts = ["a red car", "a blue sea", "a dog"]
    out = reward(videos, prompts)
    assert out["frame"].tolist() == [2.0] * 3 and out["degenerate"].tolist() == [0.0] * 3
    frames = torch.stack([release_jpeg(videos[i, 2]) for i in range(3)])
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    with torch.no_grad():
        image = nn.functional.normalize(reference.visual(letterbox(frames, 32, mean, std)), dim=-1)
        text = nn.functional.normalize(reference.encode_text(open_clip_tokens(reward.tokenizer, prompts)), dim=-1)
    torch.testing.assert_close(out["hps"], (image * text).sum(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["score"], out["hps"])  # normalizer 1: the release adds the raw score
    halved = HPSReward(tiny_hps, tokenizer=tiny_clip, dtype="fp32", normalizer=2.0)(videos, prompts)
    torch.testing.assert_close(halved["score"], out["hps"] / 2)
    default = HPSReward(tiny_hps, tokenizer=tiny_clip)(videos, prompts)  # fp16 weights, as the release's autocast
    torch.testing.assert_close(default["hps"], out["hps"], atol=3e-3, rtol=0)
    unrounded = letterbox(videos[:, 2], 32, mean, std)
    with torch.no_grad():
        direct = (nn.functional.normalize(reference.visual(unrounded), dim=-1) * text).sum(-1)
    assert not torch.allclose(direct, out["hps"], atol=1e-4), "the JPEG trip changes what is scored"


def test_prompts_are_cleaned_as_open_clip_cleans_them():
    assert clean_prompt("  A cat’s “whiskers”\n&amp;amp;\t dogs ") == 'A cat\'s "whiskers" & dogs'


def test_jpeg_trip_uses_pils_default_quality_as_the_release():
    frame = torch.rand(3, 24, 40, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(jpeg_round_trip(frame), release_jpeg(frame), rtol=0, atol=0)
    assert not torch.equal(jpeg_round_trip(frame, quality=95), release_jpeg(frame))


def test_letterbox_fits_the_longer_side_and_pads_black_evenly():
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    images = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(4))
    out = letterbox(images, 32, mean, std)
    black = ((0 - mean) / std).reshape(1, 3, 1, 1)
    # 40 x 56 -> 23 x 32 (32 * 40 / 56 = 22.9, rounded), 9 rows of padding: 4 above, 5 below
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out[:, :, :4], black.expand(2, 3, 4, 32))
    torch.testing.assert_close(out[:, :, 27:], black.expand(2, 3, 5, 32))
    content = out[:, :, 4:27] * std.reshape(1, 3, 1, 1) + mean.reshape(1, 3, 1, 1)
    torch.testing.assert_close(content.mean((2, 3)), images.mean((2, 3)), atol=0.02, rtol=0)
    tall = letterbox(torch.rand(1, 3, 64, 32), 32, mean, std)  # 32 x 16, 8 columns each side
    torch.testing.assert_close(tall[..., :8], black.expand(1, 3, 32, 8))
    torch.testing.assert_close(tall[..., 24:], black.expand(1, 3, 32, 8))
    assert not torch.allclose(tall[..., 8:24], black.expand(1, 3, 32, 16))


def test_random_frame_differs_by_step_and_repeats(tiny_hps, tiny_clip):
    reward = HPSReward(tiny_hps, tokenizer=tiny_clip, dtype="fp32", seed=3)
    videos = torch.rand(4, 7, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    steps = [reward.frames(4, 7, s) for s in range(5)]
    assert torch.equal(reward(videos, ["a"] * 4, step=2)["frame"], steps[2].float()), "the scored frame, by step"
    assert torch.equal(steps[2], reward.frames(4, 7, 2)), "seeded by (seed, step): a resume draws the same"
    assert len({tuple(f.tolist()) for f in steps}) > 1 and all(((f >= 0) & (f < 7)).all() for f in steps)
    assert any(len(set(f.tolist())) > 1 for f in steps), "one draw per video"
    reward.same_frame = True
    shared = reward(videos, ["a"] * 4, step=2)["frame"]
    assert shared.tolist() == [float(reward.frames(1, 7, 2))] * 4, "the release's draw: one frame for the batch"


def test_failures_score_half_and_are_marked_degenerate(tiny_hps, tiny_clip, monkeypatch):
    reward = HPSReward(tiny_hps, tokenizer=tiny_clip, dtype="fp32")
    videos = torch.rand(3, 3, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    prompts = ["a", "b", "c"]
    clean = reward(videos, prompts)
    broken = videos.clone()
    broken[1, 1, 0, 0, 0] = float("nan")  # the middle frame of video 1
    out = reward(broken, prompts)
    assert out["score"][1] == 0.5 and out["degenerate"].tolist() == [0.0, 1.0, 0.0] and out["hps"][1].isnan()
    torch.testing.assert_close(out["score"][[0, 2]], clean["score"][[0, 2]])

    import world_r1.rewards.hps as hps

    trip = hps.jpeg_round_trip
    calls = iter(range(3))
    monkeypatch.setattr(hps, "jpeg_round_trip", lambda f, q: trip(f, q) if next(calls) != 0 else 1 / 0)
    out = reward(videos, prompts)
    assert out["score"][0] == 0.5 and out["degenerate"].tolist() == [1.0, 0.0, 0.0]
    monkeypatch.setattr(hps, "jpeg_round_trip", trip)

    embed = reward.embed

    def nan_features(images, texts):
        image, text = embed(images, texts)
        return image.index_fill(0, torch.tensor([2]), float("nan")), text

    monkeypatch.setattr(reward, "embed", nan_features)
    total = WeightedReward({"hps": reward})(videos, prompts)  # the composite keeps the finite 0.5 and the flag
    assert total["hps"][2] == 0.5 and total["hps/degenerate"].tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(total["hps"][:2], clean["score"][:2])


def test_checkpoint_formats_and_mismatches(reference, tiny_hps, tiny_clip, tmp_path):
    bare = tmp_path / "bare.pt"  # a bare state dict in fp16, saved from DistributedDataParallel
    torch.save({f"module.{k}": v.half() for k, v in reference.state_dict().items()}, bare)
    model, _ = load_hps(str(bare), tokenizer=tiny_clip, dtype="fp32")
    assert model.dtype == torch.float32
    folder_model, _ = load_hps(str(tiny_hps).rsplit("/", 1)[0], tokenizer=tiny_clip, dtype="fp16")
    assert folder_model.dtype == torch.float16
    state = reference.state_dict()
    with pytest.raises(ValueError, match="does not map"):
        convert_openclip({**state, "visual.transformer.resblocks.0.ls_1.gamma": torch.ones(160)})
    with pytest.raises(ValueError, match="not an open_clip"):
        openclip_state_dict({"state_dict": {"vision_model.embeddings.class_embedding": torch.ones(2)}})
    with pytest.raises(ValueError, match="head width"):
        openclip_clip_config(state, vision_head_width=64)
    with pytest.raises(ValueError, match="does not fit the checkpoint"):
        small = {k: v for k, v in state.items()}
        small["token_embedding.weight"] = state["token_embedding.weight"][:300]
        torch.save(small, tmp_path / "small.pt")
        load_hps(str(tmp_path / "small.pt"), tokenizer=tiny_clip)


def test_missing_checkpoint_or_tokenizer_names_the_fixes(tmp_path, tiny_hps, tiny_clip):
    with pytest.raises(FileNotFoundError, match=r"download it once online .* or pass the local path"):
        HPSReward("nobody/no-such-hps-repo", tokenizer=tiny_clip)  # offline (tests/conftest.py): not cached
    with pytest.raises(FileNotFoundError, match=r"not found: pass an existing \.pt file"):
        HPSReward(str(tmp_path / "missing.pt"), tokenizer=tiny_clip)
    with pytest.raises(FileNotFoundError, match=r"no 'HPS_v2\.1_compressed\.pt' in the folder"):
        HPSReward(str(tmp_path), tokenizer=tiny_clip)
    with pytest.raises(FileNotFoundError, match=r"HPS tokenizer .* not found"):
        HPSReward(tiny_hps, tokenizer=str(tmp_path / "no-tokenizer"))


def test_real_vit_h_14_shapes_give_hpsv2s_architecture():
    """ViT-H-14 at its real size on the meta device (no memory): the config read off the shapes, and every weight
    mapped onto a CLIPModel of the same parameter count (986,109,441, open_clip's ViT-H-14)."""
    from transformers import CLIPModel

    width, text_width, embed = 1280, 1024, 1024
    state = {
        "visual.conv1.weight": (width, 3, 14, 14),
        "visual.class_embedding": (width,),
        "visual.positional_embedding": (257, width),
        "visual.ln_pre.weight": (width,),
        "visual.ln_pre.bias": (width,),
        "visual.ln_post.weight": (width,),
        "visual.ln_post.bias": (width,),
        "visual.proj": (width, embed),
        "token_embedding.weight": (49408, text_width),
        "positional_embedding": (77, text_width),
        "ln_final.weight": (text_width,),
        "ln_final.bias": (text_width,),
        "text_projection": (text_width, embed),
        "logit_scale": (),
    }
    for prefix, w, layers in (("visual.", width, 32), ("", text_width, 24)):
        for n in range(layers):
            block = f"{prefix}transformer.resblocks.{n}."
            state |= {block + "attn.in_proj_weight": (3 * w, w), block + "attn.in_proj_bias": (3 * w,)}
            state |= {block + "attn.out_proj.weight": (w, w), block + "attn.out_proj.bias": (w,)}
            state |= {block + f"{ln}.{p}": (w,) for ln in ("ln_1", "ln_2") for p in ("weight", "bias")}
            state |= {block + "mlp.c_fc.weight": (4 * w, w), block + "mlp.c_fc.bias": (4 * w,)}
            state |= {block + "mlp.c_proj.weight": (w, 4 * w), block + "mlp.c_proj.bias": (w,)}
    weights = {key: torch.empty(shape, device="meta") for key, shape in state.items()}
    weights["logit_scale"] = torch.tensor(math.log(100.0))
    config = openclip_clip_config(weights)
    vision, text = config.vision_config, config.text_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (1280, 32, 16)
    assert (vision.intermediate_size, vision.patch_size, vision.image_size, vision.hidden_act) == (
        5120,
        14,
        224,
        "gelu",
    )
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (1024, 24, 16)
    assert (text.vocab_size, text.max_position_embeddings, text.eos_token_id, config.projection_dim) == (
        49408,
        77,
        49407,
        1024,
    )
    with torch.device("meta"):
        model = CLIPModel(config)
    model.load_state_dict(convert_openclip({k: v.to("meta") for k, v in weights.items()}), strict=True, assign=True)
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(v.numel() for v in weights.values()) == 986_109_441


# Parity with the official packages, where they import (they need torchvision, which this project does without).


def official(module: str):
    """An official package's module, or a skip where it cannot import (no torchvision; hpsv2's wheel also lacks the
    BPE vocabulary its tokenizer reads at import)."""
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as error:
        pytest.skip(f"{module} does not import here: {error}")


def test_converted_model_matches_open_clip_itself(tmp_path, tiny_clip):
    open_clip = official("open_clip")
    torch.manual_seed(0)
    model = open_clip.model.CLIP(
        EMBED,
        dict(image_size=32, layers=2, width=160, head_width=80, patch_size=8),
        dict(context_length=32, vocab_size=VOCAB, width=128, heads=2, layers=2),
    ).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # open_clip starts layer norms at 1, 0 and biases at 0
            parameter.add_(0.05 * torch.randn_like(parameter))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "hps.pt")
    converted, tokenizer = load_hps(str(tmp_path / "hps.pt"), tokenizer=tiny_clip, dtype="fp32")
    images, prompts = torch.randn(2, 3, 32, 32), ["a red car", "a dog"]
    text = tokenizer(prompts, padding="max_length", max_length=32, return_tensors="pt")
    with torch.no_grad():
        out = converted(**text, pixel_values=images)
        expected_image = model.encode_image(images, normalize=True)
        expected_text = model.encode_text(open_clip_tokens(tokenizer, prompts), normalize=True)
    torch.testing.assert_close(out.image_embeds, expected_image, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.text_embeds, expected_text, atol=1e-5, rtol=0)


def test_letterbox_matches_hpsv2s_inference_transform():
    transform = official("hpsv2.src.open_clip.transform").image_transform(224, False, resize_longest_max=True)
    for height, width in ((480, 832), (832, 480), (300, 301)):
        frame = torch.rand(3, height, width, generator=torch.Generator().manual_seed(height))
        array = (frame * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG")
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        ours = letterbox(jpeg_round_trip(frame)[None], 224, torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD))[0]
        torch.testing.assert_close(ours, transform(image), atol=1e-5, rtol=0)


def test_laion_style_tokenizer_matches_open_clips():
    """A transformers CLIPTokenizer holding open_clip's BPE vocabulary (what LAION's hub tokenizer is) tokenizes as
    open_clip's SimpleTokenizer (padded with 0 there, with end-of-text here; cut to 77 with end-of-text last)."""
    tokenizer = official("open_clip.tokenizer")
    from transformers import CLIPTokenizer, CLIPTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    with gzip.open(tokenizer.default_bpe()) as file:
        merges = file.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    characters = list(bytes_to_unicode().values())
    tokens = [*characters, *(c + "</w>" for c in characters), *("".join(m.split()) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder = tempfile.mkdtemp()
    Path(folder, "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(tokens)}))
    Path(folder, "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    prompts = ["Camera pan left. A barn at dusk!", "a cat’s “whiskers” &amp; 2\tdogs ", "word " * 100, "Über 10 😀"]
    expected = tokenizer.tokenize(prompts)
    for kind in (CLIPTokenizer, CLIPTokenizerFast):
        hf = kind(str(Path(folder, "vocab.json")), str(Path(folder, "merges.txt")), pad_token="<|endoftext|>")
        cleaned = [clean_prompt(prompt) for prompt in prompts]
        got = hf(cleaned, padding="max_length", truncation=True, max_length=77, return_tensors="pt")["input_ids"]
        torch.testing.assert_close(got.where(expected != 0, torch.zeros_like(got)), expected)
