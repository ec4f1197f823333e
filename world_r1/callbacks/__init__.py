"""Side concerns of a run, each switchable in YAML: EMA, LoRA export, video logging, 3D-consistency evaluation."""

from world_r1.callbacks.ema import LoRAEMA, find_ema
from world_r1.callbacks.evaluation import ConsistencyEvaluation
from world_r1.callbacks.export import LoRAExport, fuse_lora_into_pipeline
from world_r1.callbacks.progress import EpochProgressBar, StepProgressBar
from world_r1.callbacks.summary import RunSummary
from world_r1.callbacks.video_logger import VideoLogger

__all__ = [
    "ConsistencyEvaluation",
    "EpochProgressBar",
    "LoRAEMA",
    "LoRAExport",
    "RunSummary",
    "StepProgressBar",
    "VideoLogger",
    "find_ema",
    "fuse_lora_into_pipeline",
]
