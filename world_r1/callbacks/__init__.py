"""Side concerns of a run, each switchable in YAML: EMA, LoRA export, video logging, 3D-consistency evaluation."""

from world_r1.callbacks.ema import LoRAEMA
from world_r1.callbacks.export import LoRAExport, fuse_lora_into_pipeline
from world_r1.callbacks.video_logger import VideoLogger

__all__ = ["LoRAEMA", "LoRAExport", "VideoLogger", "fuse_lora_into_pipeline"]
