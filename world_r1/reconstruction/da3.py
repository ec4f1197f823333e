"""Depth Anything 3 (Lin et al., 2025) as a video reconstructor: all frames in one pass -> per-frame cameras, depth and
3D Gaussians, the reconstruction World-R1's release scores its 3D terms on (``depth-anything/DA3-GIANT``).

The network is the ``depth-anything-3`` package's own ``DepthAnything3Net``, built from its YAML configs and loaded
from a hub repository or folder laid out as the package's ``DepthAnything3.from_pretrained`` expects
(``config.json`` naming a preset, ``model.safetensors`` with ``model.``-prefixed keys). The package's high-level
``depth_anything_3.api`` is not used: it imports torchvision, OpenCV and the exporters at import time. Its input
preprocessing is re-implemented here in torch (:func:`preprocess`), matching ``InputProcessor`` with
``upper_bound_resize``; the forward pass runs as the api's (bf16 autocast on CUDA, float32 elsewhere).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from world_r1.reconstruction.gaussians import Gaussians
from world_r1.reconstruction.scene import Reconstruction

log = logging.getLogger(__name__)

RELEASE_MODEL = "depth-anything/DA3-GIANT"
HUB_MODELS = (
    "depth-anything/DA3-GIANT",  # the only main-series preset with a Gaussian head (da3-giant.yaml)
    "depth-anything/DA3-GIANT-1.1",
    "depth-anything/DA3NESTED-GIANT-LARGE",
    "depth-anything/DA3-LARGE",
    "depth-anything/DA3-BASE",
    "depth-anything/DA3-SMALL",
)
INSTALL = (
    "pip install einops addict opt_einsum_fx && pip install --no-deps depth-anything-3==0.1.1 evo==1.38.1 e3nn==0.6.0"
)
# modules the network needs at run time: evo (pose alignment) is imported by the Gaussian adapter, e3nn rotates its
# spherical harmonics to world space, opt_einsum_fx is e3nn's
_REQUIRED = ("depth_anything_3", "einops", "addict", "omegaconf", "evo", "e3nn", "opt_einsum_fx")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PATCH = 14

# A tiny random configuration in the package's schema for offline tests: the real classes (DinoV2 ViT-S, the
# smallest backbone the package builds, DualDPT, the camera decoder, the Gaussian head and adapter of da3-giant) with
# narrow heads: ~31M parameters, a few seconds a forward on a CPU.
TINY_CONFIG: dict[str, Any] = {
    "__object__": {"path": "depth_anything_3.model.da3", "name": "DepthAnything3Net", "args": "as_params"},
    "net": {
        "__object__": {"path": "depth_anything_3.model.dinov2.dinov2", "name": "DinoV2", "args": "as_params"},
        "name": "vits",
        "out_layers": [5, 7, 9, 11],
        "alt_start": 4,
        "qknorm_start": 4,
        "rope_start": 4,
        "cat_token": True,
    },
    "head": {
        "__object__": {"path": "depth_anything_3.model.dualdpt", "name": "DualDPT", "args": "as_params"},
        "dim_in": 768,
        "output_dim": 2,
        "features": 16,
        "out_channels": [8, 16, 32, 32],
    },
    "cam_enc": {
        "__object__": {"path": "depth_anything_3.model.cam_enc", "name": "CameraEnc", "args": "as_params"},
        "dim_out": 384,
    },
    "cam_dec": {
        "__object__": {"path": "depth_anything_3.model.cam_dec", "name": "CameraDec", "args": "as_params"},
        "dim_in": 768,
    },
    "gs_head": {
        "__object__": {"path": "depth_anything_3.model.gsdpt", "name": "GSDPT", "args": "as_params"},
        "dim_in": 768,
        "output_dim": 38,
        "features": 16,
        "out_channels": [8, 16, 32, 32],
    },
    "gs_adapter": {
        "__object__": {"path": "depth_anything_3.model.gs_adapter", "name": "GaussianAdapter", "args": "as_params"},
        "sh_degree": 2,
        "pred_color": False,
        "pred_offset_depth": True,
        "pred_offset_xy": True,
        "gaussian_scale_min": 1e-5,
        "gaussian_scale_max": 30.0,
    },
}


def import_da3() -> Any:
    """The ``depth_anything_3.cfg`` module, after checking every module the network needs; a missing one raises
    ``ImportError`` naming the install command (the package's declared dependencies pull a CUDA torch, xformers and
    numpy<2, so it is installed without them)."""
    missing = [name for name in _REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"Depth Anything 3 needs {', '.join(missing)} (not installed): {INSTALL}")
    os.environ.setdefault("DA3_LOG_LEVEL", "WARN")  # the package prints an INFO line on every forward
    with warnings.catch_warnings():  # its cfg module registers an OmegaConf resolver the deprecated way
        warnings.simplefilter("ignore", UserWarning)
        return importlib.import_module("depth_anything_3.cfg")


def build_network(config: str | Mapping[str, Any]) -> nn.Module:
    """A randomly initialised ``DepthAnything3Net`` from a preset name (``"da3-giant"``, any
    ``depth_anything_3.registry.MODEL_REGISTRY`` key), a YAML path in the package's schema, or such a config as a
    mapping (e.g. :data:`TINY_CONFIG`)."""
    cfg = import_da3()
    from omegaconf import OmegaConf

    if isinstance(config, Mapping):
        loaded = cfg.resolve_recursive(OmegaConf.create(dict(config)), cfg.resolve_inheritance)
    else:
        from depth_anything_3.registry import MODEL_REGISTRY

        if config not in MODEL_REGISTRY and not Path(config).is_file():
            raise ValueError(
                f"unknown Depth Anything 3 preset {config!r}: one of {sorted(MODEL_REGISTRY)} or a YAML path"
            )
        loaded = cfg.load_config(MODEL_REGISTRY.get(config, config))
    return cfg.create_object(loaded)


def _resolve_files(model: str) -> tuple[Path, Path]:
    """``config.json`` and ``model.safetensors`` of a folder or hub repository (from the local cache when offline);
    a missing one raises ``FileNotFoundError`` naming the fix."""
    hint = f"pass a hub id such as {RELEASE_MODEL!r} or a folder holding config.json and model.safetensors"
    if Path(model).is_dir():
        files = Path(model) / "config.json", Path(model) / "model.safetensors"
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise FileNotFoundError(f"Depth Anything 3 folder {model!r} lacks {', '.join(absent)}: {hint}.")
        return files
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError

    try:
        return Path(hf_hub_download(model, "config.json")), Path(hf_hub_download(model, "model.safetensors"))
    except (OSError, EntryNotFoundError, HFValidationError) as error:  # absent, offline and not cached, malformed
        raise FileNotFoundError(
            f"Depth Anything 3 model {model!r} not found ({error.__class__.__name__}; offline runs need it in the hub "
            f"cache): {hint}."
        ) from error


def _resize_area(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """OpenCV's ``INTER_AREA`` shrink of (N, C, H, W): each output pixel the mean of the input area it covers, input
    pixels cut at the fractional borders (separable: one (out, in) weight matrix per axis)."""

    def weights(size_in: int, size_out: int) -> torch.Tensor:
        scale = size_in / size_out
        lo = torch.arange(size_out, dtype=torch.float64)[:, None] * scale
        pixel = torch.arange(size_in, dtype=torch.float64)[None]
        overlap = (torch.minimum(lo + scale, pixel + 1) - torch.maximum(lo, pixel)).clamp_min(0)
        return (overlap / scale).to(image)

    rows, cols = weights(image.shape[-2], height), weights(image.shape[-1], width)
    return torch.einsum("yh,nchw,xw->ncyx", rows, image, cols)


def _resize_like_cv2(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 3, H, W) uint8 values as floats, resized as the package's ``cv2.resize`` calls do: ``INTER_CUBIC`` where
    either side grows, ``INTER_AREA`` otherwise, then rounded and saturated to uint8 levels."""
    if (height, width) == tuple(image.shape[-2:]):
        return image
    if height > image.shape[-2] or width > image.shape[-1]:
        out = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False)
    else:
        out = _resize_area(image, height, width)
    return out.round().clamp(0, 255)


def processed_size(height: int, width: int, process_res: int = 504) -> tuple[int, int]:
    """The (height, width) ``InputProcessor`` gives a (height, width) frame with ``upper_bound_resize``: the long
    side to ``process_res``, then each side to the nearest multiple of 14 (ties up)."""
    scale = process_res / max(height, width)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))

    def nearest(x: int) -> int:
        down = x // PATCH * PATCH
        return max(1, down + PATCH if down + PATCH - x <= x - down else down)

    return nearest(h), nearest(w)


def preprocess(frames: torch.Tensor, process_res: int = 504) -> torch.Tensor:
    """Frames (F, 3, H, W) in [0, 1] -> the network's input (F, 3, h, w): quantised to uint8 levels (the release
    hands the server 8-bit frames), resized as ``InputProcessor(process_res_method="upper_bound_resize")`` (long side
    to ``process_res`` by area or cubic interpolation, then each side to a multiple of 14), ImageNet-normalised."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (F, 3, H, W) in [0, 1], got {tuple(frames.shape)}")
    height, width = frames.shape[-2:]
    image = (frames.float().clamp(0, 1) * 255).round()
    if max(height, width) != process_res:
        scale = process_res / max(height, width)
        image = _resize_like_cv2(image, max(1, round(height * scale)), max(1, round(width * scale)))
    image = _resize_like_cv2(image, *processed_size(height, width, process_res))
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(1, 3, 1, 1)
    return (image / 255 - mean) / std


class DepthAnything3(nn.Module):
    """``forward(frames (F, 3, H, W) in [0, 1]) -> Reconstruction``: one Depth Anything 3 pass over all frames.

    ``self.model`` is the package's ``DepthAnything3Net``; state-dict keys are those of the hub checkpoints
    (``model.backbone...``). Build with :meth:`from_pretrained` (hub id or folder) or from a config (random weights).

    Args:
        config: preset name, YAML path or config mapping (see :func:`build_network`).
        process_res: the long side the frames are resized to (504 in the release).
        ref_view_strategy: how the network picks its reference view (the package's default).
    """

    def __init__(
        self,
        config: str | Mapping[str, Any] = "da3-giant",
        process_res: int = 504,
        ref_view_strategy: str = "saddle_balanced",
    ) -> None:
        super().__init__()
        if process_res < PATCH:
            raise ValueError(f"process_res must be at least {PATCH}, got {process_res}")
        self.config = dict(config) if isinstance(config, Mapping) else config
        self.model = build_network(config).eval().requires_grad_(False)
        self.process_res, self.ref_view_strategy = process_res, ref_view_strategy

    @classmethod
    def from_pretrained(cls, model: str = RELEASE_MODEL, **kwargs: Any) -> DepthAnything3:
        """Load ``model`` (hub id such as ``depth-anything/DA3-GIANT``, or a folder from :meth:`save_pretrained`).

        ``config.json`` holds ``{"model_name": <preset>}`` as the package's hub mixin writes it, or (for custom and
        test models) ``{"config": <mapping in the package's schema>}``. A checkpoint lacking any weight but the camera
        encoder's (used only when cameras are given, which this class never does), e.g. the Gaussian head, raises;
        unused extra tensors are logged (the package's own loader ignores both silently).
        """
        import safetensors.torch

        config_file, weights_file = _resolve_files(model)
        stored = json.loads(config_file.read_text())
        if "config" not in stored and "model_name" not in stored:
            raise ValueError(f"{config_file} names no Depth Anything 3 preset ('model_name') or config ('config').")
        net = cls(stored.get("config", stored.get("model_name")), **kwargs)
        missing, unexpected = safetensors.torch.load_model(net, weights_file, strict=False)
        missing = [key for key in missing if not key.startswith("model.cam_enc.")]
        if missing:
            raise ValueError(
                f"{model!r} lacks weights its config needs: {missing[:5]} ({len(missing)} in all); the Gaussian head "
                f"is in {RELEASE_MODEL!r}."
            )
        if unexpected:  # the package itself loads non-strictly; extra tensors are not used, so say so and go on
            log.warning("%s: %d unused tensors in the checkpoint, e.g. %s", model, len(unexpected), unexpected[:3])
        return net

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` in the layout :meth:`from_pretrained` reads."""
        import safetensors.torch

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stored = {"config": self.config} if isinstance(self.config, dict) else {"model_name": self.config}
        (directory / "config.json").write_text(json.dumps(stored, indent=2))
        safetensors.torch.save_model(self, str(directory / "model.safetensors"))  # shared DPT weights stored once
        return directory

    @property
    def has_gaussians(self) -> bool:
        return getattr(self.model, "gs_head", None) is not None

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, gaussians: bool = True) -> Reconstruction:
        """Reconstruct one video's frames (F, 3, H, W) in [0, 1]; ``gaussians`` runs the Gaussian head (the model
        must have one). Cameras come from the camera decoder, as the release (no ray-based pose)."""
        if gaussians and not self.has_gaussians:
            raise ValueError(f"this Depth Anything 3 has no Gaussian head: use {RELEASE_MODEL!r} (da3-giant).")
        device = next(self.parameters()).device
        pixels = preprocess(frames.to(device), self.process_res)[None]  # (1, F, 3, h, w)
        use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = self.model(pixels, infer_gs=gaussians, ref_view_strategy=self.ref_view_strategy)
        w2c = out.extrinsics[0].float()
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], device=device).expand(len(w2c), 1, 4)
        w2c = torch.cat([w2c[:, :3, :4], bottom], dim=1)
        splats = None
        if gaussians:
            g = out.gaussians
            splats = Gaussians(
                means=g.means[0].float(),
                scales=g.scales[0].float(),
                rotations=g.rotations[0].float(),
                opacities=g.opacities[0].float(),
                harmonics=g.harmonics[0].float().transpose(1, 2),  # (N, 3, K) -> (N, K, 3)
            )
        return Reconstruction(
            poses=torch.linalg.inv(w2c),
            intrinsics=out.intrinsics[0].float(),
            image_size=tuple(pixels.shape[-2:]),
            depth=out.depth[0].float(),
            confidence=out.depth_conf[0].float() if "depth_conf" in out else None,
            gaussians=splats,
        )
