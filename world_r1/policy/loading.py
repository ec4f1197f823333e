"""Load a Wan pipeline (2.1 or 2.2, text- or image-to-video) from a hub id or a local directory, failing early with
a message that names the fix."""

from __future__ import annotations

import os
import re
from pathlib import Path

import diffusers
import torch
from diffusers import DiffusionPipeline

from world_r1.policy.config import DEFAULT_MODEL

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUILTIN_MODELS = {"mini-wan": ASSETS / "mini_wan"}  # builtin:NAME -> a diffusers Wan shipped with the package
#: The diffusers pipelines a Wan directory may declare in ``model_index.json`` (``_class_name``).
WAN_PIPELINES = (
    "WanPipeline",  # Wan2.1-T2V, Wan2.2-T2V-A14B, Wan2.2-TI2V-5B
    "WanImageToVideoPipeline",  # Wan2.1-I2V-14B, Wan2.2-I2V-A14B
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or not _HUB_ID.match(model)


def resolve_model_source(model: str | os.PathLike) -> str:
    """Return a local directory or a hub id, raising before any download if neither can work.

    ``builtin:mini-wan`` is the mini Wan shipped with the package (pre-trained by ``make mini-model``); a string that
    exists on disk is a local directory (it must hold ``model_index.json``); a string of the form ``org/name`` is a
    hub id; anything else is a path that does not exist.
    """
    model = str(model)
    if model.startswith("builtin:"):
        name = model.removeprefix("builtin:")
        if name not in BUILTIN_MODELS:
            raise FileNotFoundError(f"Unknown built-in model {model!r}; the built-in models: {sorted(BUILTIN_MODELS)}.")
        model = str(BUILTIN_MODELS[name])
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{path} exists but holds no model_index.json: point `policy.model` at a diffusers Wan directory "
                "(saved with save_pretrained, or downloaded with `huggingface-cli download <id> --local-dir DIR`)."
            )
        return str(path)
    if _looks_like_path(model):
        raise FileNotFoundError(
            f"Model path {model!r} does not exist. Pass a diffusers Wan directory or a hub id such as "
            f"{DEFAULT_MODEL!r}; for an offline demo build one with `python -m world_r1 tiny --out {model}`."
        )
    return model


def wan_pipeline_class(source: str) -> type[DiffusionPipeline]:
    """The Wan pipeline class ``source``'s ``model_index.json`` declares; a clear error for anything else."""
    index = DiffusionPipeline.load_config(source)
    name = index.get("_class_name")
    if name not in WAN_PIPELINES:
        components = sorted(k for k in index if not k.startswith("_"))
        raise ValueError(
            f"{source} is a {name or 'pipeline without _class_name'} (components: {', '.join(components)}), not a "
            f"Wan: world-r1 drives diffusers Wan pipelines, whose model_index.json names one of {sorted(WAN_PIPELINES)}"
            f" (e.g. {DEFAULT_MODEL}, Wan-AI/Wan2.2-TI2V-5B-Diffusers, Wan-AI/Wan2.1-I2V-14B-480P-Diffusers)."
        )
    return getattr(diffusers, name)  # imported on use: the image-to-video pipeline pulls in CLIP


def load_wan_pipeline(
    model: str | os.PathLike, dtype: torch.dtype = torch.bfloat16, vae_dtype: torch.dtype | None = None
) -> DiffusionPipeline:
    """The Wan pipeline class the model declares (``WanPipeline`` or ``WanImageToVideoPipeline``), loaded with
    ``from_pretrained``: the transformer(s) and text encoder in ``dtype``, the VAE and the CLIP image encoder (if any)
    in ``vae_dtype``; the same code for hub and disk.

    ``vae_dtype`` None keeps the VAE in float32 whenever ``dtype`` is half precision, as diffusers' Wan examples do:
    every reward is computed on its frames, and its fp16 decode is known to overflow. Wan's image-to-video examples
    keep the CLIP image encoder in float32 too.
    """
    source = resolve_model_source(model)
    if vae_dtype is None:
        vae_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    dtypes = {"default": dtype, "vae": vae_dtype, "image_encoder": vae_dtype}
    try:  # loaded straight into each dtype: a VAE cast up after a bf16 load would keep bf16-rounded weights
        pipe = wan_pipeline_class(source).from_pretrained(source, dtype=dtypes)
    except OSError as error:  # hub unreachable, repository missing, HF_HUB_OFFLINE with an empty cache
        raise OSError(
            f"Could not load {source!r} through diffusers' from_pretrained ({error.__class__.__name__}: {error}). "
            "Without network access, download the model elsewhere (`huggingface-cli download "
            f"{source} --local-dir DIR`) and pass `--model.policy.model DIR`, or run the offline demo "
            "(`python -m world_r1 fit --config configs/tiny.yaml`)."
        ) from error
    return pipe
