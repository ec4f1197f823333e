"""Reading and writing videos: mp4 through imageio-ffmpeg, animated GIF through PIL (what TensorBoard plays)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from PIL import Image

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")


def _to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """``(F, 3, H, W)`` floats in [0, 1] -> ``(F, H, W, 3)`` uint8."""
    if video.ndim != 4 or video.shape[1] != 3:
        raise ValueError(f"expected a video of shape (F, 3, H, W), got {tuple(video.shape)}")
    frames = (video.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return frames.permute(0, 2, 3, 1).cpu().numpy()


def write_mp4(path: str | os.PathLike, video: torch.Tensor, fps: int = 16) -> Path:
    """Write ``(F, 3, H, W)`` in [0, 1] as H.264 mp4 (yuv420p, playable everywhere); sides padded to even sizes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = _to_uint8_frames(video)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    imageio.mimwrite(tmp, list(frames), fps=fps, codec="libx264", quality=8, pixelformat="yuv420p", macro_block_size=1)
    tmp.replace(path)  # a crash mid-write never leaves a truncated file under the final name
    return path


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> torch.Tensor:
    """Read a video file as ``(F, 3, H, W)`` float32 in [0, 1].

    Raises:
        ValueError: the file cannot be decoded or holds no frames, with the path in the message.
    """
    path = Path(path)
    try:
        reader = imageio.get_reader(path)
        frames = []
        for i, frame in enumerate(reader):
            if max_frames is not None and i >= max_frames:
                break
            frames.append(np.asarray(frame)[..., :3])
        reader.close()
    except Exception as error:  # imageio raises many types for corrupt or unknown files
        reason = (str(error).splitlines() or [""])[0]  # ffmpeg appends pages of build details
        raise ValueError(f"cannot decode video {path}: {error.__class__.__name__}: {reason}") from error
    if not frames:
        raise ValueError(f"video {path} holds no frames")
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    return video.contiguous()


def encode_gif(video: torch.Tensor, fps: int = 16) -> bytes:
    """Animated GIF bytes of ``(F, 3, H, W)`` in [0, 1], looping forever."""
    images = [Image.fromarray(frame) for frame in _to_uint8_frames(video)]
    buffer = io.BytesIO()
    duration = max(20, round(1000 / fps))
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return buffer.getvalue()


def tile_videos(videos: torch.Tensor, columns: int | None = None, pad: int = 2) -> torch.Tensor:
    """Tile ``(N, F, 3, H, W)`` into one grid video ``(F, 3, H', W')`` with ``pad`` white pixels between cells."""
    n, f, c, h, w = videos.shape
    columns = columns or n
    rows = -(-n // columns)
    grid = videos.new_ones(f, c, rows * (h + pad) - pad, columns * (w + pad) - pad)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[:, :, r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = videos[i]
    return grid


def jpeg_round_trip(frame: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> the same frame after a trip through JPEG, (3, H, W) float32 on the CPU: ``round(255 x)``
    as uint8, JPEG-encoded by PIL at ``quality`` (PIL's default, 75, is what World-R1's release sends its preference
    model), decoded as RGB and divided by 255. Values outside [0, 1] are clipped first."""
    array = (frame.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 255
