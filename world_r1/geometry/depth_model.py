"""A learned depth source: a ``transformers`` depth model (Depth Anything V2 by default) fitted to sparse anchors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from world_r1.geometry.depth import DepthSource, inlier_anchors, sample_at
from world_r1.hub import pretrained_config
from world_r1.settings import resolve_dtype

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def fit_scale_shift(prediction: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Least squares ``scale * prediction + shift ~ target`` over (M,) samples, refitted twice without outliers.

    Returns ``(0, median(target))`` (a constant) when the samples cannot fix a positive scale, e.g. a flat or
    inverted prediction: a constant is the safest guess that still warps.
    """
    prediction, target = prediction.double(), target.double()
    fallback = (0.0, float(target.median()))
    keep = torch.ones_like(target, dtype=torch.bool)
    scale = shift = 0.0
    for _ in range(3):
        design = torch.stack([prediction[keep], torch.ones_like(prediction[keep])], 1)
        if len(design) < 3 or float(prediction[keep].std()) < 1e-9 * float(prediction[keep].abs().mean() + 1e-12):
            return fallback
        solution = torch.linalg.lstsq(design, target[keep][:, None]).solution[:, 0]
        scale, shift = float(solution[0]), float(solution[1])
        keep = inlier_anchors(target, scale * prediction + shift)
    if not (scale > 0 and torch.isfinite(torch.tensor([scale, shift])).all()):
        return fallback
    return scale, shift


class ModelDepth(DepthSource):
    """Depth from a ``transformers`` depth-estimation model, aligned to the anchors.

    Frames are resized so the long side is ``input_size`` and both sides are multiples of the backbone's patch size
    (14 for Dinov2: other sizes shrink the output), normalised, and the prediction is resized back. Relative models
    (Depth Anything's ``relative`` heads) output affine-invariant inverse depth: ``scale`` and ``shift`` are fitted
    to the anchors' inverse depths by least squares; metric models (``output="depth"``) only get a median scale.
    Where the fit cannot fix a positive scale, the frame gets the anchors' median depth everywhere.

    Args:
        model: hub id or local directory for ``AutoModelForDepthEstimation.from_pretrained``.
        output: ``"inverse_depth"`` (relative models) or ``"depth"`` (metric models).
        input_size: long side of the model input in pixels (rounded to the patch size).
        mean, std: input normalisation (ImageNet for Depth Anything).
        dtype: model dtype (``"fp32"``, ``"bf16"``, ``"fp16"``); the fit runs in float64.
    """

    def __init__(
        self,
        model: str = "depth-anything/Depth-Anything-V2-Small-hf",
        output: str = "inverse_depth",
        input_size: int = 266,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        dtype: str = "fp32",
    ) -> None:
        super().__init__()
        from transformers import AutoModelForDepthEstimation  # heavy import, only for this source

        if output not in ("inverse_depth", "depth"):
            raise ValueError(f"output must be 'inverse_depth' or 'depth', got {output!r}")
        torch_dtype = resolve_dtype(dtype)
        config = pretrained_config(model, "depth model", "depth-anything/Depth-Anything-V2-Small-hf")
        try:
            network = AutoModelForDepthEstimation.from_pretrained(model, dtype=torch_dtype)
        # transformers: "Unrecognized configuration class ... for AutoModelForDepthEstimation"
        except ValueError as error:
            raise ValueError(
                f"{model!r} is a {config.model_type!r} model, not a depth-estimation model; pass one that "
                "AutoModelForDepthEstimation loads, such as 'depth-anything/Depth-Anything-V2-Small-hf'."
            ) from error
        self.model = network.eval().requires_grad_(False)
        backbone = getattr(self.model.config, "backbone_config", None)
        self.patch = int(getattr(backbone, "patch_size", None) or getattr(self.model.config, "patch_size", 14) or 14)
        self.output, self.input_size = output, input_size
        self.register_buffer("mean", torch.tensor(mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).reshape(1, 3, 1, 1), persistent=False)

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """Model input (h, w): long side ``input_size``, aspect kept, both multiples of the patch size."""
        scale = self.input_size / max(height, width)
        return (
            max(self.patch, round(height * scale / self.patch) * self.patch),
            max(self.patch, round(width * scale / self.patch) * self.patch),
        )

    @torch.no_grad()
    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        """The model's raw output for ``frames`` (N, 3, H, W) in [0, 1], resized to (N, 1, H, W), float32."""
        height, width = frames.shape[-2:]
        pixels = F.interpolate(frames.float(), size=self.input_shape(height, width), mode="bilinear", antialias=True)
        pixels = (pixels - self.mean) / self.std
        dtype = next(self.model.parameters()).dtype
        raw = self.model(pixel_values=pixels.to(dtype)).predicted_depth.float()[:, None]
        return F.interpolate(raw, size=(height, width), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, points: list[torch.Tensor], depths: list[torch.Tensor]) -> torch.Tensor:
        self._check(frames, points, depths)
        raw = torch.nan_to_num(self.predict(frames))
        out = []
        for prediction, xy, depth in zip(raw, points, depths, strict=True):
            at_anchors = sample_at(prediction, xy.float())[:, 0]
            if self.output == "inverse_depth":
                scale, shift = fit_scale_shift(at_anchors, 1.0 / depth)
                inverse = (scale * prediction + shift).clamp_min(float((1.0 / depth).min()) * 0.1)
                out.append(1.0 / inverse)
            else:
                ratio = depth.double() / at_anchors.double().clamp_min(1e-9)
                scale = float(ratio.median()) if bool((at_anchors > 0).all()) else 0.0
                dense = scale * prediction if scale > 0 else torch.full_like(prediction, float(depth.median()))
                out.append(dense.clamp_min(float(depth.min()) * 0.1))
        return torch.stack(out).to(frames.dtype)
