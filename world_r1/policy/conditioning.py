"""Image-to-video conditioning: what an image-to-video Wan takes besides the noisy latents, made from one picture.

The two families condition differently, and :class:`ImageCondition` holds either form:

* Wan2.1-I2V and Wan2.2-I2V-A14B concatenate to the latents a first-frame mask and the VAE encoding of the video
  "image, then black frames" (``channels``); Wan2.1-I2V also attends to CLIP features of the image
  (``image_embeds``).
* Wan2.2-TI2V-5B holds its first latent frame at the encoded image (``first_frame``): those tokens get timestep 0 and
  are never denoised, so a rollout keeps them fixed and their log-probability is left out of the policy's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError


@dataclass
class ImageCondition:
    """The image conditioning of a batch of B samples (the fields a model does not use are None).

    channels: (B, K + C, T, h, w) first-frame mask (K = the VAE's temporal factor) and encoded image video.
    image_embeds: (B, N, D) CLIP image features for the image cross-attention.
    first_frame: (B, C, 1, h, w) the latent frame held fixed at the encoded image.
    """

    channels: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    first_frame: torch.Tensor | None = None

    def select(self, index: torch.Tensor | slice) -> ImageCondition:
        """The conditioning of the samples ``index`` (a micro-batch of the policy update)."""
        return replace(self, **{f.name: _take(getattr(self, f.name), index) for f in fields(self)})

    def doubled(self) -> ImageCondition:
        """The conditioning of a classifier-free-guidance batch: both branches see the same image."""
        return replace(self, **{f.name: _twice(getattr(self, f.name)) for f in fields(self)})

    def impose(self, latents: torch.Tensor) -> torch.Tensor:
        """``latents`` (B, C, T, h, w) with the held first frame put back (unchanged without one)."""
        if self.first_frame is None:
            return latents
        first = self.first_frame.to(latents.device, latents.dtype)
        return torch.cat([first, latents[:, :, 1:]], dim=2)

    def free_mask(self, latents: torch.Tensor) -> torch.Tensor | None:
        """(1, 1, T, 1, 1): 1 where the latents are generated, 0 on a held frame; None when every element is free."""
        if self.first_frame is None:
            return None
        mask = torch.ones(1, 1, latents.shape[2], 1, 1, device=latents.device)
        mask[:, :, 0] = 0
        return mask


def _take(value: torch.Tensor | None, index: torch.Tensor | slice) -> torch.Tensor | None:
    return None if value is None else value[index]


def _twice(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else torch.cat([value, value])


def _image_file(path: str | os.PathLike) -> Path:
    """``path`` as a file that exists, or the error that names it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Image {path} not found: give an existing image file (PNG, JPEG, WebP).")
    return path


def _unreadable(path: Path, error: Exception) -> ValueError:
    return ValueError(f"Image {path} cannot be read as a picture ({error}): save it as PNG or JPEG.")


def load_image(path: str | os.PathLike) -> Image.Image:
    """The RGB picture at ``path``, or an error naming the file and what is wrong with it."""
    path = _image_file(path)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise _unreadable(path, error) from error


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of the image at ``path`` from its header (no decode), with :func:`load_image`'s errors."""
    path = _image_file(path)
    try:
        with Image.open(path) as image:
            image.verify()  # header and structure: catches truncated and non-image files without decoding pixels
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise _unreadable(path, error) from error


def check_aspect(size: tuple[int, int], height: int, width: int, tolerance: float = 0.02) -> str | None:
    """Why an image of ``size`` (width, height) does not fit a ``width`` x ``height`` video (None if it does).

    Wan's pipelines resize the picture to the video's size without cropping, so a different aspect ratio would
    stretch the scene the camera is meant to move through.
    """
    aspect, video_aspect = size[0] / size[1], width / height
    if abs(aspect / video_aspect - 1) <= tolerance:
        return None
    return (
        f"is {size[0]}x{size[1]} (aspect {aspect:.2f}) but the videos are {width}x{height} ({video_aspect:.2f}): crop "
        "it to the video's aspect ratio or change video.height/video.width"
    )
