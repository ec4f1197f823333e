"""Flow-matching training of Wan: the mini base model from scratch, or a LoRA on a real Wan from captioned videos."""

from world_r1.pretrain.callbacks import LogSamples, SavePretrained
from world_r1.pretrain.data import ClipDataModule
from world_r1.pretrain.module import FlowObjective, VAEObjective, WanTrainer
from world_r1.pretrain.video_folder import VideoFolder

__all__ = [
    "ClipDataModule",
    "FlowObjective",
    "LogSamples",
    "SavePretrained",
    "VAEObjective",
    "VideoFolder",
    "WanTrainer",
]
