"""`python -m world_r1 sample`: prompts in, mp4 files out, from a training checkpoint or an exported LoRA."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch
from rich.progress import track

from world_r1.callbacks.ema import LoRAEMA
from world_r1.camera import CameraConfig
from world_r1.checkpoint_io import CheckedCheckpointIO
from world_r1.data import load_prompts
from world_r1.hparams import module_arguments
from world_r1.module import WorldR1
from world_r1.policy import DEFAULT_MODEL, WAN_NEGATIVE_PROMPT, PolicyConfig, VideoSpec
from world_r1.policy.conditioning import check_aspect, image_size
from world_r1.policy.lora import lora_config_of_file
from world_r1.seeding import derive_seed
from world_r1.video_io import write_mp4


def load_module_from_checkpoint(checkpoint: str | os.PathLike, use_ema: bool = True) -> WorldR1:
    """Rebuild the trained module from a Lightning checkpoint: base model from its config, LoRA (EMA if saved)."""
    state = CheckedCheckpointIO().load_checkpoint(checkpoint, weights_only=False)
    module = WorldR1(**module_arguments(state.get("hyper_parameters", {})))
    module.configure_model()
    missing = module.load_state_dict(state["state_dict"], strict=False).unexpected_keys
    if missing:
        raise ValueError(f"{checkpoint} does not match the model it names: unexpected keys {missing[:3]}")
    averages = [v for k, v in state.get("callbacks", {}).items() if k.startswith(LoRAEMA.__name__)]
    if use_ema and averages and averages[0].get("average") is not None:
        with torch.no_grad():
            for param, value in zip(module.policy.lora_parameters(), averages[0]["average"], strict=True):
                param.copy_(value)
    return module


def sample(
    prompts: str,
    out: str = "samples",
    checkpoint: str | None = None,
    lora: str | None = None,
    model: str = DEFAULT_MODEL,
    dtype: str = "bf16",
    height: int = 480,
    width: int = 832,
    num_frames: int = 81,
    steps: int = 50,
    guidance_scale: float = 5.0,
    sampler: str | None = None,
    negative_prompt: str | None = None,
    camera: CameraConfig | None = None,
    no_camera: bool = False,
    image: str | None = None,
    seed: int = 0,
    use_ema: bool = True,
    device: str = "cuda" if torch.cuda.is_available() else "cpu",
) -> list[Path]:
    """Generate one mp4 per prompt with the deterministic (ODE) sampler.

    Args:
        prompts: a prompt file (.txt or .jsonl, or builtin:eval) or a single prompt text.
        out: folder for the mp4 files (``<index>.mp4``, with ``prompts.txt`` listing them).
        checkpoint: a Lightning checkpoint of a run: model, LoRA and video size come from it.
        lora: an exported LoRA (folder or .safetensors) applied to ``model`` instead of a checkpoint.
        model: base Wan (hub id or local directory) when no checkpoint is given.
        dtype: bf16, fp16 or fp32 (without a checkpoint).
        height: video height in pixels (without a checkpoint).
        width: video width in pixels (without a checkpoint).
        num_frames: frames, 4k+1 (without a checkpoint).
        steps: denoising steps.
        guidance_scale: classifier-free guidance scale.
        sampler: "unipc" (WanPipeline's default) or "euler"; default the checkpoint's evaluation sampler, else unipc.
        negative_prompt: the unconditional prompt; default the checkpoint's, else Wan's standard negative prompt.
        camera: implicit camera conditioning (the initial noise warped along each prompt's camera words), e.g.
            ``--camera.enabled true --camera.strength 0.35``; default the checkpoint's settings, else off.
        no_camera: plain Gaussian noise whatever the checkpoint was trained with.
        image: the first frame of every video, for image-to-video Wans (Wan2.1-I2V, Wan2.2-TI2V-5B); a .jsonl
            prompt file may give each prompt its own ``"image"`` instead.
        seed: the noise of prompt i is seeded from (seed, i): reruns give the same videos.
        use_ema: with a checkpoint, sample with its EMA weights when it has them.
        device: where to run.
    """
    records = load_prompts(prompts) if Path(prompts).is_file() or prompts.startswith("builtin:") else None
    texts = [r.text for r in records] if records else [prompts]
    images = [image or r.image for r in records] if records else [image]
    if checkpoint:
        module = load_module_from_checkpoint(checkpoint, use_ema)
    else:
        policy = PolicyConfig(model=model, dtype=dtype, negative_prompt=WAN_NEGATIVE_PROMPT)
        if lora:
            policy.lora = lora_config_of_file(lora)
        module = WorldR1(policy=policy, video=VideoSpec(height, width, num_frames))
        module.configure_model()
        if lora:
            module.policy.load_lora(lora)
        sampler = sampler or "unipc"
    if sampler:
        module.sampling = replace(module.sampling, eval_sampler=sampler)  # validated: a bad name lists the choices
    if negative_prompt is not None:
        module.policy.negative_prompt = negative_prompt
    if camera is not None:
        module.camera = camera
    if no_camera:
        module.camera = replace(module.camera, enabled=False)
    if image is not None:
        _check_image(image, module)
    module.to(device).eval()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(track(texts, description="sampling")):
        video = module.generate(
            [text], [derive_seed(seed, "sample", i)], num_steps=steps, guidance_scale=guidance_scale, images=[images[i]]
        )
        paths.append(write_mp4(out_dir / f"{i:04d}.mp4", video[0], module.video.fps))
    (out_dir / "prompts.txt").write_text("".join(f"{p.name}\t{t}\n" for p, t in zip(paths, texts, strict=True)))
    return paths


def _check_image(path: str, module: WorldR1) -> None:
    """``--image`` is a readable picture of the videos' aspect ratio, given to a model that takes one."""
    if module.policy.conditioning == "none":
        raise ValueError(f"--image {path}: this Wan is text-to-video only; use an image-to-video model.")
    problem = check_aspect(image_size(path), module.video.height, module.video.width)
    if problem:
        raise ValueError(f"--image {path} {problem}.")
