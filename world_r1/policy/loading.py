"""Load a Wan 2.1 pipeline from a hub id or a local directory, failing early with a message that names the fix."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from diffusers import WanPipeline

from world_r1.policy.config import DEFAULT_MODEL

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUILTIN_MODELS = {"mini-wan": ASSETS / "mini_wan"}  # builtin:NAME -> a diffusers Wan shipped with the package
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


def load_wan_pipeline(
    model: str | os.PathLike, dtype: torch.dtype = torch.bfloat16, vae_dtype: torch.dtype | None = None
) -> WanPipeline:
    """``WanPipeline.from_pretrained`` with the transformer and text encoder in ``dtype`` and the VAE in
    ``vae_dtype``; the same code for hub and disk.

    ``vae_dtype`` None keeps the VAE in float32 whenever ``dtype`` is half precision, as diffusers' Wan examples do:
    every reward is computed on its frames, and its fp16 decode is known to overflow.
    """
    source = resolve_model_source(model)
    if vae_dtype is None:
        vae_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    try:  # loaded straight into each dtype: a VAE cast up after a bf16 load would keep bf16-rounded weights
        pipe = WanPipeline.from_pretrained(source, dtype={"default": dtype, "vae": vae_dtype})
    except OSError as error:  # hub unreachable, repository missing, HF_HUB_OFFLINE with an empty cache
        raise OSError(
            f"Could not load {source!r} through WanPipeline.from_pretrained ({error.__class__.__name__}: {error}). "
            "Without network access, download the model elsewhere (`huggingface-cli download "
            f"{source} --local-dir DIR`) and pass `--model.policy.model DIR`, or run the offline demo "
            "(`python -m world_r1 fit --config configs/tiny.yaml`)."
        ) from error
    return pipe
