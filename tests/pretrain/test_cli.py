"""`python -m world_r1 pretrain` as users run it: printed configs round-trip, and the two mini-model stages chain."""

import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import WanPipeline
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import print_config, run_world_r1

pytestmark = pytest.mark.slow  # subprocess runs, notebooks, whole-pipeline fits: `make test-fast` skips them

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
# a tiny model on a 32-pixel world: the real stage configs, shrunk from the command line
TINY = [
    "--trainer.max_steps=3",
    "--trainer.accelerator=cpu",
    "--data.train.init_args.config.height=32",
    "--data.train.init_args.config.width=32",
    "--data.train.init_args.config.num_frames=5",
    "--data.num_workers=0",
    "--data.batch_size=2",
]
TINY_SIZES = [
    "--model.sizes.text_dim=32",
    "--model.sizes.heads=2",
    "--model.sizes.head_dim=12",
    "--model.sizes.layers=1",
    "--model.sizes.ffn_dim=32",
    "--model.sizes.vae_base_dim=4",
]


def _run(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return run_world_r1("pretrain", *args, cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("config", ["mini_vae.yaml", "mini_base.yaml"])
def test_print_config_round_trips_with_overrides(tmp_path, config):
    first = print_config("pretrain", "--config", str(CONFIGS / config), "--model.lr=0.01", "--trainer.max_steps=7")
    printed = yaml.safe_load(first)
    assert printed["model"]["lr"] == 0.01 and printed["trainer"]["max_steps"] == 7
    saved = tmp_path / "printed.yaml"
    saved.write_text(first)
    assert yaml.safe_load(print_config("pretrain", "--config", str(saved))) == printed


def test_two_stages_chain_into_a_wan_pipeline_with_its_manifest(tmp_path):
    vae_dir, model_dir = tmp_path / "vae", tmp_path / "model"
    first = _run(
        "--config", str(CONFIGS / "mini_vae.yaml"), *TINY, *TINY_SIZES, "--model.vae.crop=16",
        "--model.vae.calibration_batches=1", f"--model.output_dir={vae_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert (vae_dir / "model_index.json").is_file()
    config = yaml.safe_load((CONFIGS / "mini_base.yaml").read_text())
    samples = next(c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("LogSamples"))
    samples["init_args"] |= {"every_n_steps": 3, "height": 32, "width": 32, "num_frames": 5, "num_inference_steps": 2}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(config))
    second = _run(
        "--config", str(tmp_path / "base.yaml"), *TINY, f"--model.model={vae_dir}", f"--model.output_dir={model_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]

    pipe = WanPipeline.from_pretrained(model_dir)
    stage_one = WanPipeline.from_pretrained(vae_dir)
    assert pipe.vae.config.latents_std == stage_one.vae.config.latents_std  # stage 2 keeps stage 1's VAE
    manifest = json.loads((model_dir / "world_r1_manifest.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == ["vae", "transformer"]
    last = manifest["stages"][-1]
    assert last["steps"] == 3 and "base.yaml" in last["command"]
    assert last["data"]["train"]["class_path"] == "world_r1.synthetic.worlds.SyntheticWorld"
    assert last["data"]["train"]["config"]["height"] == 32 and last["parameters"]["transformer"] > 0

    events = EventAccumulator(str(tmp_path / "runs" / "mini_base" / "version_0"), size_guidance={"images": 0})
    events.Reload()
    gif = events.Images("samples/transformer")[0]
    assert gif.encoded_image_string[:6] == b"GIF89a"


def test_print_config_of_the_video_lora_recipe_round_trips(tmp_path):
    first = print_config("pretrain", "--config", str(CONFIGS / "wan21_lora_videos.yaml"), "--model.lora.rank=8")
    printed = yaml.safe_load(first)
    assert printed["model"]["lora"]["rank"] == 8
    (tmp_path / "printed.yaml").write_text(first)
    assert yaml.safe_load(print_config("pretrain", "--config", str(tmp_path / "printed.yaml"))) == printed


def test_lora_on_a_folder_of_captioned_videos(tmp_path, tiny_wan_dir):
    from world_r1.video_io import write_mp4

    videos = tmp_path / "videos"
    for k in range(2):
        write_mp4(videos / f"clip{k}.mp4", torch.rand(6, 3, 40, 40, generator=torch.Generator().manual_seed(k)), fps=8)
        (videos / f"clip{k}.txt").write_text(f"Camera pan left. Clip {k}.")
    out = _run(
        "--config", str(CONFIGS / "wan21_lora_videos.yaml"), "--trainer.accelerator=cpu", "--trainer.max_steps=2",
        "--trainer.callbacks=[]", "--trainer.logger=false", f"--model.model={tiny_wan_dir}", "--model.dtype=fp32",
        "--model.lora.rank=4", "--model.max_sequence_length=64", f"--model.output_dir={tmp_path / 'lora'}",
        f"--data.train.init_args.root={videos}", "--data.train.init_args.num_frames=5",
        "--data.train.init_args.height=32", "--data.train.init_args.width=32",
        "--data.train.init_args.frame_stride=1", "--data.num_workers=0", "--data.batch_size=2",
        "--trainer.callbacks+=world_r1.pretrain.SavePretrained", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    pipe.load_lora_weights(tmp_path / "lora")  # a plain diffusers pipeline takes the LoRA
    assert any("lora" in name for name, _ in pipe.transformer.named_parameters())
