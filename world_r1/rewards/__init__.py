"""Rewards: a common interface, weighted composition, and the terms (3D consistency, camera path, preference)."""

from world_r1.rewards.base import Reward, WeightedReward, check_videos
from world_r1.rewards.depth import DepthConsistencyReward
from world_r1.rewards.epipolar import EpipolarReward, MotionReward, parallax_gate
from world_r1.rewards.hps import HPSReward
from world_r1.rewards.novel_view import NovelViewReward
from world_r1.rewards.quality import PreferenceReward, QualityReward
from world_r1.rewards.reconstruction import ReconstructionReward
from world_r1.rewards.release3d import Release3DReward
from world_r1.rewards.simple import BrightnessReward, ColorReward
from world_r1.rewards.trajectory import FlowTrajectoryReward, PathShapeReward, ReleaseTrajectoryReward

__all__ = [
    "BrightnessReward",
    "ColorReward",
    "DepthConsistencyReward",
    "EpipolarReward",
    "FlowTrajectoryReward",
    "HPSReward",
    "MotionReward",
    "NovelViewReward",
    "PathShapeReward",
    "PreferenceReward",
    "QualityReward",
    "ReconstructionReward",
    "Release3DReward",
    "ReleaseTrajectoryReward",
    "Reward",
    "WeightedReward",
    "check_videos",
    "parallax_gate",
]
