"""Writing media into TensorBoard event files without moviepy: videos as animated GIF image summaries."""

from __future__ import annotations

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary

from world_r1.video_io import encode_gif


def find_tensorboard(loggers) -> TensorBoardLogger | None:
    """The first TensorBoard logger of a trainer, if any."""
    return next((logger for logger in loggers if isinstance(logger, TensorBoardLogger)), None)


def add_gif(logger: TensorBoardLogger, tag: str, video: torch.Tensor, step: int, fps: int) -> None:
    """Log ``(F, 3, H, W)`` in [0, 1] as an animated GIF that TensorBoard's Images tab plays.

    ``SummaryWriter.add_video`` needs moviepy < 2 and otherwise writes an empty event without failing, so the GIF is
    encoded here and written as the same image summary ``add_video`` would produce.
    """
    _, _, height, width = video.shape
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=encode_gif(video, fps))
    logger.experiment.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
