"""A transparent reward for learning checks and demos: how close each video's brightness is to a target."""

from __future__ import annotations

from collections.abc import Sequence

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

    def forward(self, videos: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        check_videos(videos)
        brightness = videos.float().mean(dim=(1, 2, 3, 4))
        return {"score": 1.0 - (brightness - self.target).abs(), "brightness": brightness}
