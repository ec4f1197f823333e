"""`python -m world_r1 sample`: prompts in, mp4 files out, from a training checkpoint or an exported LoRA, through
the same :class:`~world_r1.sampling.Sampler` as evaluation (no training module is built)."""

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
from world_r1.grpo import SamplingConfig
from world_r1.hparams import module_arguments
from world_r1.policy import DEFAULT_MODEL, WAN_NEGATIVE_PROMPT, PolicyConfig, VideoSpec, WanPolicy
from world_r1.policy.conditioning import check_aspect, image_size
from world_r1.policy.lora import lora_config_of_file
from world_r1.sampling import Sampler
from world_r1.video_io import write_mp4


def load_sampler_from_checkpoint(checkpoint: str | os.PathLike, use_ema: bool = True) -> Sampler:
    """The sampler of a run's Lightning checkpoint, without building its training module: base model, video size,
    sampling and camera settings and seed from its hyper-parameters, its LoRA (the EMA when saved and ``use_ema``)."""
    state = CheckedCheckpointIO().load_checkpoint(checkpoint, weights_only=False)
    saved = module_arguments(state.get("hyper_parameters", {}))
    video = saved.get("video") or VideoSpec()
    policy = _policy(saved.get("policy") or PolicyConfig(), video)
    prefix = "policy."  # the module's attribute: checkpoints name the LoRA tensors from the module down
    tensors = state["state_dict"]
    lora = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    unexpected = [k for k in tensors if not k.startswith(prefix)]
    unexpected += [prefix + k for k in policy.load_state_dict(lora, strict=False).unexpected_keys]
    if unexpected:
        raise ValueError(f"{checkpoint} does not match the model it names: unexpected keys {unexpected[:3]}")
    averages = [v for k, v in state.get("callbacks", {}).items() if k.startswith(LoRAEMA.__name__)]
    if use_ema and averages and averages[0].get("average") is not None:
        with torch.no_grad():
            for param, value in zip(policy.lora_parameters(), averages[0]["average"], strict=True):
                param.copy_(value)
    sampling, camera = saved.get("sampling") or SamplingConfig(), saved.get("camera") or CameraConfig()
    return Sampler(policy, video, sampling, camera, saved.get("seed", 0))


def _policy(config: PolicyConfig, video: VideoSpec) -> WanPolicy:
    """The policy ``config`` names, checked to make ``video``'s size."""
    policy = WanPolicy.from_config(config)
    policy.check_video(video)
    return policy


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
        engine = replace(load_sampler_from_checkpoint(checkpoint, use_ema), seed=seed)
    else:
        config = PolicyConfig(model=model, dtype=dtype, negative_prompt=WAN_NEGATIVE_PROMPT)
        if lora:
            config.lora = lora_config_of_file(lora)
        video = VideoSpec(height, width, num_frames)
        engine = Sampler(_policy(config, video), video, SamplingConfig(), CameraConfig(), seed)
        if lora:
            engine.policy.load_lora(lora)
        sampler = sampler or "unipc"
    if sampler:  # validated: a bad name lists the choices
        engine = replace(engine, sampling=replace(engine.sampling, eval_sampler=sampler))
    if negative_prompt is not None:
        engine.policy.negative_prompt = negative_prompt
    if camera is not None:
        engine = replace(engine, camera=camera)
    if no_camera:
        engine = replace(engine, camera=replace(engine.camera, enabled=False))
    if image is not None:
        _check_image(image, engine)
    engine.policy.to(device).eval()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    seeds = engine.sample_seeds(len(texts))
    for i, text in enumerate(track(texts, description="sampling")):
        video = engine.generate([text], [seeds[i]], num_steps=steps, guidance_scale=guidance_scale, images=[images[i]])
        paths.append(write_mp4(out_dir / f"{i:04d}.mp4", video[0], engine.video.fps))
    (out_dir / "prompts.txt").write_text("".join(f"{p.name}\t{t}\n" for p, t in zip(paths, texts, strict=True)))
    return paths


def _check_image(path: str, engine: Sampler) -> None:
    """``--image`` is a readable picture of the videos' aspect ratio, given to a model that takes one."""
    if engine.policy.conditioning == "none":
        raise ValueError(f"--image {path}: this Wan is text-to-video only; use an image-to-video model.")
    problem = check_aspect(image_size(path), engine.video.height, engine.video.width)
    if problem:
        raise ValueError(f"--image {path} {problem}.")
