"""Every N steps: the group's videos for a few prompts, as playable TensorBoard videos and mp4 files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from world_r1.callbacks.tensorboard_media import add_gif, find_tensorboard
from world_r1.video_io import tile_videos, write_mp4

if TYPE_CHECKING:  # for the type hints only: the module imports nothing from callbacks
    from world_r1.module import WorldR1


class VideoLogger(L.Callback):
    """Logs the latest training rollouts, reusing the frames the reward already decoded (never decoding twice).

    For each of the first ``num_prompts`` distinct prompts of the step, the group's videos (those on this process,
    at most ``max_samples``) are tiled side by side into one grid video; TensorBoard gets the grid as an animated
    GIF (tag ``videos/prompt_<k>``) plus a text table of each sample's reward terms, and ``<log_dir>/videos/`` gets
    one mp4 per sample.
    """

    def __init__(self, every_n_steps: int = 50, num_prompts: int = 2, max_samples: int = 4, write_files: bool = True):
        """
        Args:
            every_n_steps: log after every this many training steps (the first step is always logged).
            num_prompts: distinct prompts shown per logging step.
            max_samples: videos per prompt (samples of its group).
            write_files: also write mp4 files under ``<log_dir>/videos/step_<n>/``.
        """
        if every_n_steps < 1 or num_prompts < 1 or max_samples < 1:
            raise ValueError("VideoLogger: every_n_steps, num_prompts and max_samples must be >= 1.")
        self.every_n_steps = every_n_steps
        self.num_prompts = num_prompts
        self.max_samples = max_samples
        self.write_files = write_files

    def _due(self, steps_done: int) -> bool:
        return steps_done == 1 or steps_done % self.every_n_steps == 0

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: WorldR1, outputs: dict[str, Any], batch: Any, batch_idx: int
    ) -> None:
        if not outputs or not self._due(pl_module.steps_done):
            return
        fps = pl_module.video.fps
        tensorboard = find_tensorboard(trainer.loggers)
        root = Path(trainer.log_dir or trainer.default_root_dir) / "videos" / f"step_{pl_module.steps_done:06d}"
        prompts: list[str] = outputs["prompts"]
        for k, prompt in enumerate(list(dict.fromkeys(prompts))[: self.num_prompts]):
            index = [i for i, p in enumerate(prompts) if p == prompt][: self.max_samples]
            videos = outputs["videos"][index].float().cpu()
            table = self._reward_table(prompt, index, outputs["rewards"])
            if tensorboard is not None:
                add_gif(tensorboard, f"videos/prompt_{k}", tile_videos(videos), pl_module.steps_done, fps)
                tensorboard.experiment.add_text(f"videos/prompt_{k}", table, pl_module.steps_done)
            if self.write_files:
                for j, video in zip(index, videos, strict=True):
                    write_mp4(root / f"prompt{k}_sample{j}.mp4", video, fps)
                (root / f"prompt{k}.md").write_text(table + "\n")

    @staticmethod
    def _reward_table(prompt: str, index: list[int], rewards: dict[str, torch.Tensor]) -> str:
        """A markdown table: one row per sample, one column per reward term."""
        names = [n for n, v in rewards.items() if torch.is_tensor(v) and v.ndim == 1]
        header = "| sample | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 1)
        rows = [f"| {i} | " + " | ".join(f"{float(rewards[n][i]):.4f}" for n in names) + " |" for i in index]
        return f"**{prompt}**\n\n" + "\n".join([header, *rows])
