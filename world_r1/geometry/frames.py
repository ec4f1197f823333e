"""Choosing frame pairs and preparing frames for feature detection."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gap_frames(num_frames: int, gap: float) -> int:
    """Frames between the two frames of a pair spanning the fraction ``gap`` of a ``num_frames`` clip (at least 1)."""
    return max(1, round(gap * (num_frames - 1)))


def anchor_pairs(num_frames: int, anchors: int, consecutive: bool = False) -> torch.Tensor:
    """The pairs a camera path is read from: ``anchors`` keyframes spread evenly over the clip after frame 0, the last
    one included, each paired with frame 0 (a path relative to frame 0) or, ``consecutive``, with the keyframe before
    it (a path chained step by step); shape (A, 2), long, A <= anchors (fewer for short clips)."""
    if anchors < 1 or num_frames < 2:
        return torch.zeros(0, 2, dtype=torch.long)
    ends = torch.linspace(0, num_frames - 1, steps=anchors + 1)[1:].round().long().unique()
    ends = ends[ends > 0]
    starts = torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1]]) if consecutive else torch.zeros_like(ends)
    return torch.stack([starts, ends], 1)


def frame_pairs(num_frames: int, gaps: tuple[float, ...] = (0.5,), max_pairs: int = 4) -> torch.Tensor:
    """Pairs ``(i, i + round(g (F - 1)))`` for each fraction ``g`` of ``gaps``, spread evenly over the video, at most
    ``max_pairs`` per gap; shape (P, 2), long. A 1-frame video has no pairs (P = 0)."""
    pairs: list[tuple[int, int]] = []
    for fraction in gaps:
        gap = min(gap_frames(num_frames, fraction), num_frames - 1)
        if gap < 1:
            continue
        starts = torch.linspace(0, num_frames - 1 - gap, steps=min(max_pairs, num_frames - gap)).round().long()
        pairs += [(int(s), int(s) + gap) for s in starts.unique()]
    return torch.tensor(sorted(set(pairs)), dtype=torch.long).reshape(-1, 2)


def resized(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``frames`` (N, C, H, W) at ``size`` (h, w): area averaging to shrink, bilinear to enlarge."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    shrink = size[0] <= frames.shape[-2] and size[1] <= frames.shape[-1]
    return F.interpolate(frames, size=size, mode="area" if shrink else "bilinear")


def grayscale_resized(frames: torch.Tensor, max_side: int, upscale: bool = False) -> tuple[torch.Tensor, float]:
    """``(N, 3, H, W)`` in [0, 1] -> grayscale ``(N, 1, h, w)`` with the long side at most ``max_side`` (exactly
    ``max_side`` with ``upscale``: smaller frames are enlarged too).

    Returns the frames and the factor that maps coordinates of the resized frames back to the input's pixels.
    """
    gray = (0.299 * frames[:, 0] + 0.587 * frames[:, 1] + 0.114 * frames[:, 2]).unsqueeze(1).float()
    height, width = gray.shape[-2:]
    scale = max_side / max(height, width)
    if not upscale:
        scale = min(1.0, scale)
    if scale != 1.0:
        gray = resized(gray, (max(8, round(height * scale)), max(8, round(width * scale))))
    return gray, 1.0 / scale
