"""A transparent reward for learning checks and demos: how close each video's brightness is to a target."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from world_r1.rewards.base import Reward, check_videos


class BrightnessReward(Reward):
    """``score = 1 - |mean brightness - target|`` in [0, 1]; with ``target = 1`` it simply rewards brighter videos.

    Not a 3D reward: it exists so that tests can prove the RL loop learns (a signal the tiny model can follow).
    """

    def __init__(self, target: float = 1.0) -> None:
        """
        Args:
            target: the brightness in [0, 1] that scores 1.
        """
        super().__init__()
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"BrightnessReward.target must be in [0, 1], got {target}.")
        self.target = target

    def forward(self, videos: torch.Tensor, prompts: Sequence[str], **metadata: Any) -> dict[str, torch.Tensor]:
        check_videos(videos)
        brightness = videos.float().mean(dim=(1, 2, 3, 4))
        return {"score": 1.0 - (brightness - self.target).abs(), "brightness": brightness}


class ColorReward(Reward):
    """``score = 1 - mean_c |mean_c(video) - target_c|``: how close the video's average colour is to ``target``.

    Also a learning-check reward; a colour direction moves more than brightness through a small random decoder.
    """

    def __init__(self, target: tuple[float, float, float] = (1.0, 0.0, 0.0)) -> None:
        """
        Args:
            target: RGB in [0, 1] that scores 1 (default pure red).
        """
        super().__init__()
        if len(target) != 3 or not all(0.0 <= c <= 1.0 for c in target):
            raise ValueError(f"ColorReward.target must be three values in [0, 1], got {target}.")
        self.register_buffer("target", torch.tensor(target, dtype=torch.float32), persistent=False)

    def forward(self, videos: torch.Tensor, prompts: Sequence[str], **metadata: Any) -> dict[str, torch.Tensor]:
        check_videos(videos)
        color = videos.float().mean(dim=(1, 3, 4))  # (B, 3)
        distance = (color - self.target.to(color.device)).abs().mean(dim=1)
        return {"score": 1.0 - distance, "red": color[:, 0], "green": color[:, 1], "blue": color[:, 2]}
