"""Perceptual distance between a re-rendered frame and the real one: LPIPS's form on any convolutional backbone.

World-R1 reports LPIPS of re-rendered against real frames next to PSNR and SSIM. LPIPS (Zhang et al., 2018) compares
deep features: each layer's activations are unit-normalised over channels, their squared differences averaged over
the image, and the layers summed. Its published weights are linear heads on torchvision's AlexNet/VGG, which are not
loadable through ``transformers``; this module computes the same form with uniform channel weights (the paper's
"baseline" variant) on any backbone ``transformers.AutoModel`` loads by hub id or local path and that returns image
feature maps (ResNet, ConvNeXt, ...). Distances are comparable between videos scored with the same backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from world_r1.hub import pretrained_config
from world_r1.settings import resolve_dtype

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualDistance(nn.Module):
    """``forward(a, b, valid=None) -> (N,)``: the LPIPS-form distance of images (N, 3, H, W) in [0, 1] (0: identical,
    larger: more different). With ``valid`` (N, 1, H, W), pixels outside it are copied from ``b`` first, so only the
    valid region differs.

    Args:
        model: hub id or local folder of a ``transformers`` vision backbone with convolutional hidden states.
        layers: which of its hidden states to compare (None: all of them).
        dtype: weights' dtype, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (features are compared in float32).
    """

    def __init__(self, model: str = "microsoft/resnet-50", layers: list[int] | None = None, dtype: str = "fp32"):
        super().__init__()
        from transformers import AutoModel  # heavy import, only when a perceptual distance is asked for

        pretrained_config(model, "perceptual model", "microsoft/resnet-50")
        self.name = model
        self.backbone = AutoModel.from_pretrained(model, dtype=resolve_dtype(dtype)).eval().requires_grad_(False)
        self.layers = layers
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The compared feature maps (N, C_l, H_l, W_l), unit-normalised over channels, in float32."""
        dtype = next(self.backbone.parameters()).dtype
        pixels = ((images.float() - self.mean) / self.std).to(dtype)
        hidden = self.backbone(pixel_values=pixels, output_hidden_states=True).hidden_states
        chosen = [hidden[i] for i in self.layers] if self.layers is not None else list(hidden)
        if not chosen or any(h.ndim != 4 for h in chosen):
            raise ValueError(
                f"{self.name} returns no image feature maps (B, C, H, W) as hidden states: use a convolutional "
                "backbone such as microsoft/resnet-50 or facebook/convnext-tiny-224."
            )
        return [F.normalize(h.float(), dim=1, eps=1e-10) for h in chosen]

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if valid is not None:
            a = torch.where(valid, a, b)
        distance = a.new_zeros(len(a), dtype=torch.float32)
        for fa, fb in zip(self.features(a), self.features(b), strict=True):
            distance += (fa - fb).square().sum(1).mean((1, 2))
        return distance
