"""The tiny model goes through the same from_pretrained code as the real one, and bad inputs fail early."""

import json

import pytest
import torch
from diffusers import WanPipeline

from world_r1.policy import (
    LoRAConfig,
    VideoSpec,
    WanPolicy,
    WanSizes,
    build_tiny_pipeline,
    build_tiny_wan,
    load_wan_pipeline,
)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_tiny_model_is_deterministic_given_seed():
    a, b, c = build_tiny_pipeline(seed=3), build_tiny_pipeline(seed=3), build_tiny_pipeline(seed=4)
    for name in ("transformer", "vae", "text_encoder"):
        sa, sb, sc = _state(getattr(a, name)), _state(getattr(b, name)), _state(getattr(c, name))
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_save_load_round_trip_through_from_pretrained(tmp_path):
    built = build_tiny_pipeline(seed=0)
    directory = build_tiny_wan(tmp_path / "wan", seed=0)
    assert (directory / "model_index.json").is_file()
    loaded = load_wan_pipeline(directory, torch.float32)
    assert isinstance(loaded, WanPipeline)
    for name in ("transformer", "vae", "text_encoder"):
        original, reloaded = _state(getattr(built, name)), _state(getattr(loaded, name))
        assert original.keys() == reloaded.keys()
        assert all(torch.equal(original[k], reloaded[k]) for k in original)
    ids = built.tokenizer("Camera pan left. A red barn.").input_ids
    assert loaded.tokenizer("Camera pan left. A red barn.").input_ids == ids
    assert ids[-1] == built.tokenizer.eos_token_id


def test_existing_model_is_not_overwritten(tmp_path):
    first = build_tiny_wan(tmp_path, seed=0)
    stamp = (first / "model_index.json").stat().st_mtime_ns
    build_tiny_wan(tmp_path, seed=1)
    assert (first / "model_index.json").stat().st_mtime_ns == stamp


def test_missing_local_path_names_the_fix(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=r"does not exist.*world_r1 tiny"):
        WanPolicy.from_pretrained(str(missing), dtype="fp32")


def test_builtin_models_resolve_to_the_package_and_unknown_names_list_them(monkeypatch, tmp_path):
    from world_r1.policy import loading

    monkeypatch.setitem(loading.BUILTIN_MODELS, "mini-wan", build_tiny_wan(tmp_path / "mini", seed=0))
    assert loading.resolve_model_source("builtin:mini-wan") == str(tmp_path / "mini")
    with pytest.raises(FileNotFoundError, match=r"Unknown built-in model 'builtin:giant'.*mini-wan"):
        loading.resolve_model_source("builtin:giant")


def test_directory_without_model_index_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model_index\.json"):
        WanPolicy.from_pretrained(str(tmp_path), dtype="fp32")


def test_hub_id_without_network_names_the_fix():
    with pytest.raises(OSError, match=r"huggingface-cli download.*--local-dir"):
        WanPolicy.from_pretrained("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", dtype="fp32")


def test_unknown_lora_target_lists_valid_names(tiny_wan_dir):
    with pytest.raises(ValueError, match=r"Unknown LoRA target module.*attn1\.not_a_layer.*attn1\.to_q"):
        WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(target_modules=["attn1.not_a_layer"]))


def test_unknown_dtype_lists_choices(tiny_wan_dir):
    with pytest.raises(ValueError, match="bf16"):
        WanPolicy.from_pretrained(tiny_wan_dir, dtype="float8")


@pytest.mark.parametrize("frames", [8, 10, 0])
def test_frames_must_be_4k_plus_1(frames):
    with pytest.raises(ValueError, match="4k\\+1"):
        VideoSpec(height=64, width=64, num_frames=frames)


@pytest.mark.parametrize(("height", "width"), [(480, 830), (470, 832), (8, 64)])
def test_sides_must_be_multiples_of_16(height, width):
    with pytest.raises(ValueError, match="multiple of 16"):
        VideoSpec(height=height, width=width, num_frames=81)


def test_video_spec_latent_shape():
    assert VideoSpec(480, 832, 81).latent_shape() == (16, 21, 60, 104)


def test_the_shipped_mini_wan_loads_and_records_how_it_was_made():
    import json

    from world_r1.policy.loading import BUILTIN_MODELS

    pipe = load_wan_pipeline("builtin:mini-wan", torch.float32)
    assert pipe.vae.config.scale_factor_temporal == 2 and pipe.transformer.config.num_layers == 4
    manifest = json.loads((BUILTIN_MODELS["mini-wan"] / "world_r1_manifest.json").read_text())
    assert [stage["stage"] for stage in manifest["stages"]] == ["vae", "transformer"]
    assert all("pretrain --config configs/mini_" in stage["command"] for stage in manifest["stages"])
    assert 0.0 < manifest["base_metrics"]["means"]["consistent"] < 1.0  # the base mixes both kinds of video
    frames = pipe(
        "Camera pan left. A red tower in front of a brick wall on a grass lawn.",
        num_frames=9,
        height=128,
        width=128,
        num_inference_steps=2,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).frames
    assert frames.shape == (1, 9, 3, 128, 128) and frames.std() > 0.05  # a picture, not a constant


def test_the_demo_reads_prompts_as_the_shipped_mini_wan_was_trained_to():
    """Padding tokens are not neutral in Wan's cross-attention (the text projection maps zero rows to its bias), so the
    RL config must pad prompts to the length the transformer was pre-trained with, and every world prompt must fit."""
    import yaml

    from tests.helpers import ROOT
    from world_r1.data import load_prompts
    from world_r1.policy.loading import BUILTIN_MODELS
    from world_r1.pretrain.manifest import read_manifest

    manifest = read_manifest(BUILTIN_MODELS["mini-wan"])
    trained_length = manifest["stages"][-1]["model"]["max_sequence_length"]
    config = yaml.safe_load((ROOT / "configs" / "mini.yaml").read_text())
    assert config["model"]["policy"]["max_sequence_length"] == trained_length
    tokenizer = load_wan_pipeline("builtin:mini-wan", torch.float32).tokenizer
    for prompts in ("builtin:mini_train", "builtin:mini_eval"):
        ids = [tokenizer(record.text).input_ids for record in load_prompts(prompts)]
        assert max(map(len, ids)) <= trained_length
        assert not any(tokenizer.unk_token_id in row for row in ids), "every word of the world is in the vocabulary"


def test_word_level_tokenizer_gives_one_token_a_word_and_round_trips(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Camera pan left. A red barn.\nCamera truck right. A stone well.\n", encoding="utf-8")
    sizes = WanSizes(vocabulary=(str(prompts),))
    build_tiny_pipeline(seed=0, sizes=sizes).save_pretrained(tmp_path / "wan")
    loaded = load_wan_pipeline(tmp_path / "wan", torch.float32)
    ids = loaded.tokenizer("camera PAN left. A red barn.").input_ids
    assert len(ids) == 9, "six words, two full stops and the end-of-sequence token"
    assert ids == loaded.tokenizer("Camera pan left. A red barn.").input_ids, "lower-cased"
    assert loaded.tokenizer("Camera pan left. A green barn.").input_ids.count(loaded.tokenizer.unk_token_id) == 1
    assert loaded.text_encoder.config.vocab_size == len(loaded.tokenizer) == 3 + 11
    assert len(build_tiny_pipeline(seed=0).tokenizer("A red barn.").input_ids) == 12, "byte-level by default"


def test_vae_loads_in_fp32_for_half_precision_and_in_the_asked_dtype_otherwise(tiny_wan_dir):
    for dtype in (torch.bfloat16, torch.float16):
        pipe = load_wan_pipeline(tiny_wan_dir, dtype)
        assert pipe.transformer.dtype == pipe.text_encoder.dtype == dtype and pipe.vae.dtype == torch.float32
    assert load_wan_pipeline(tiny_wan_dir, torch.bfloat16, vae_dtype=torch.bfloat16).vae.dtype == torch.bfloat16
    assert load_wan_pipeline(tiny_wan_dir, torch.float32).vae.dtype == torch.float32


def test_a_folder_that_is_not_a_wan_says_what_it_found_and_what_is_expected(tmp_path):
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})
    )
    with pytest.raises(ValueError, match=r"is a StableDiffusionPipeline \(components: unet\), not a Wan.*WanPipeline"):
        load_wan_pipeline(str(tmp_path), torch.float32)


def test_each_wan_loads_as_the_pipeline_it_declares_with_its_image_encoder_in_fp32(tiny_variant_dir):
    i2v = load_wan_pipeline(tiny_variant_dir("wan2.1-i2v"), torch.bfloat16)
    assert type(i2v).__name__ == "WanImageToVideoPipeline"
    assert i2v.transformer.dtype == torch.bfloat16 and i2v.image_encoder.dtype == i2v.vae.dtype == torch.float32
    a14b = load_wan_pipeline(tiny_variant_dir("wan2.2-t2v-a14b"), torch.bfloat16)
    assert type(a14b).__name__ == "WanPipeline" and a14b.transformer_2.dtype == torch.bfloat16
    assert load_wan_pipeline(tiny_variant_dir("wan2.2-ti2v"), torch.float32).config.expand_timesteps
