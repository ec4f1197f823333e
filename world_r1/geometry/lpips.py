"""LPIPS (Zhang et al., 2018) exactly as the ``lpips`` package computes it by default: v0.1 linear heads on AlexNet.

World-R1's reconstruction reward is ``clip(1 - mean LPIPS(render_i, frame_i))`` with ``lpips.LPIPS(net='alex')``.
That package builds AlexNet through torchvision, which is not always importable beside a given torch build, so this
module re-states the same computation in plain torch and loads the same two published files under their own key
names: torchvision's ImageNet AlexNet (``features.N.weight``) and lpips' heads (``linK.model.1.weight``). Every
operation follows ``lpips/lpips.py`` and ``lpips/pretrained_networks.py`` of lpips 0.1.4 in the same order, so the
distances agree with ``lpips.LPIPS(net='alex', version='0.1')(a, b, normalize=True)`` to float rounding.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
HEADS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"
# cached under this name in torch's hub folder; the "-df73285e" is its sha256 prefix, which torch.hub then verifies
_HEADS_CACHE = "lpips-v0.1-alex-df73285e.pth"

# lpips' ScalingLayer: inputs in [-1, 1] moved to ImageNet statistics
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# torchvision's AlexNet ``features`` up to relu5: (in, out, kernel, stride, padding) of the convs at indices 0, 3, 6,
# 8, 10; max-pools (3, stride 2) at 2 and 5; lpips taps the ReLUs after each conv (relu1..relu5)
_CONVS = {
    0: (3, 64, 11, 4, 2),
    3: (64, 192, 5, 1, 2),
    6: (192, 384, 3, 1, 1),
    8: (384, 256, 3, 1, 1),
    10: (256, 256, 3, 1, 1),
}
_POOLS = (2, 5)
CHANNELS = tuple(c[1] for c in _CONVS.values())
MIN_SIZE = 31  # smaller images leave no pixel after the second max-pool


def alexnet_features() -> nn.Sequential:
    """torchvision's ``AlexNet().features[:12]`` (up to relu5), module for module, so its state dict keys load."""
    layers: list[nn.Module] = []
    for index in range(12):
        if index in _CONVS:
            c_in, c_out, kernel, stride, padding = _CONVS[index]
            layers.append(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding))
        elif index in _POOLS:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def normalize_tensor(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """lpips' unit-normalisation over channels (B, C, H, W): ``x / (||x|| + eps)``, not ``F.normalize``'s
    ``x / max(||x||, eps)``, to agree to the last bit."""
    return features / (torch.sqrt(torch.sum(features**2, dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    """``forward(a, b, valid=None) -> (N,)``: LPIPS v0.1 (AlexNet) of images (N, 3, H, W) in [0, 1], H, W >= 31
    (0: identical; typical photos 0.1-0.7). With ``valid`` (N, 1, H, W) bool, pixels outside it are copied from ``b``
    first, so only the valid region differs. Same call as :class:`PerceptualDistance`; frozen, in eval mode.

    Args:
        backbone: torchvision's ImageNet AlexNet state dict file (``alexnet-owt-7be5be79.pth``; classifier keys are
            ignored); None: downloaded from ``ALEXNET_URL`` once into torch's hub cache.
        heads: lpips' v0.1 linear heads file (``lpips/weights/v0.1/alex.pth``); None: the copy inside an installed
            ``lpips`` package (found without importing it), else downloaded from ``HEADS_URL`` into the hub cache.
    """

    def __init__(self, backbone: str | None = None, heads: str | None = None):
        super().__init__()
        self.name = "lpips-alex-v0.1"
        self.features = alexnet_features()
        self.heads = nn.ParameterList(torch.zeros(1, c, 1, 1) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        trunk = _state_dict(backbone, ALEXNET_URL, None, "AlexNet backbone", "torchvision's alexnet-owt-7be5be79.pth")
        wanted = {f"features.{key}": value.shape for key, value in self.features.state_dict().items()}
        self.features.load_state_dict(_pick(trunk, wanted, backbone or ALEXNET_URL, "features."))
        lins = _state_dict(heads or _installed_heads(), HEADS_URL, _HEADS_CACHE, "LPIPS heads", "lpips' v0.1 alex.pth")
        wanted = {f"lin{k}.model.1.weight": head.shape for k, head in enumerate(self.heads)}
        self.heads.load_state_dict({str(k): w for k, w in enumerate(_pick(lins, wanted, heads or HEADS_URL).values())})
        self.eval().requires_grad_(False)

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """relu1..relu5 of AlexNet (N, C_l, H_l, W_l) for images (N, 3, H, W) in [0, 1], after lpips' scaling."""
        x = ((2 * images.float() - 1) - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index - 1 in _CONVS:
                taps.append(x)
        return taps

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS compares two image batches (N, 3, H, W) of one shape, not {a.shape} and {b.shape}")
        if min(a.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"LPIPS's AlexNet needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {tuple(a.shape[-2:])}"
            )
        if valid is not None:
            a = torch.where(valid, a, b)
        distance = 0
        for head, fa, fb in zip(self.heads, self.taps(a), self.taps(b), strict=True):
            diff = (normalize_tensor(fa) - normalize_tensor(fb)) ** 2
            distance = distance + F.conv2d(diff, head).mean((2, 3), keepdim=True)  # lpips' 1x1 conv, then average
        return distance.flatten()


def _installed_heads() -> str | None:
    """lpips' bundled ``weights/v0.1/alex.pth`` if the package is installed; found by path, since importing lpips
    imports torchvision."""
    spec = importlib.util.find_spec("lpips")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "weights" / "v0.1" / "alex.pth"
        if path.is_file():
            return str(path)
    return None


def _state_dict(path: str | None, url: str, cache_name: str | None, role: str, expected: str) -> dict:
    """The state dict in ``path``, or at ``url`` through torch's hub cache; either missing raises one error naming both
    fixes."""
    fixes = f"pass the path of {expected}, or allow the download of {url}"
    if url == HEADS_URL:
        fixes += " (or pip install lpips, which ships it)"
    try:
        if path is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            state = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", check_hash=True, file_name=cache_name, weights_only=True
            )
    except OSError as error:  # FileNotFoundError, and URLError/socket errors when offline
        raise FileNotFoundError(f"{role} {path or url!r} unavailable ({error}): {fixes}.") from error
    if not isinstance(state, dict):
        raise ValueError(f"{role} {path or url!r} holds a {type(state).__name__}, not a state dict: {fixes}.")
    return state


def _pick(state: dict, wanted: dict[str, torch.Size], source: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """The ``wanted`` keys of ``state`` (without ``prefix``) in float32, or a clear error naming what is missing or
    misshapen."""
    missing = [key for key in wanted if key not in state]
    misshapen = [key for key in wanted if key in state and state[key].shape != wanted[key]]
    if missing or misshapen:
        problem = f"lacks {missing[:3]}" if missing else f"has other shapes for {misshapen[:3]}"
        raise ValueError(
            f"{source} {problem} (keys: {list(state)[:4]} ...): pass torchvision's AlexNet ImageNet state dict as "
            "backbone and lpips' v0.1 alex.pth as heads."
        )
    return {key.removeprefix(prefix): state[key].float() for key in wanted}
