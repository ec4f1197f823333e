"""Trajectory alignment (World-R1's S_traj): does the camera in the video move the way the prompt says, and as far?

The intended motion comes from the prompt's camera plan (:mod:`world_r1.camera`) sampled at the video's frame count;
each term compares it with the video its own way:

* :class:`ReleaseTrajectoryReward`: World-R1's released S_traj formula on the camera path estimated from keyframes
  (what the Wan configs train with);
* :class:`PathShapeReward`: the same estimated path in shape and direction only, free of speed and lens, zooms
  included;
* :class:`FlowTrajectoryReward`: the image motion of frame pairs against the motion the intended path gives the same
  pixels, in direction and in size.

Configs written before the split (``world_r1.rewards.TrajectoryReward`` with ``form: path | shape | flow``) are
upgraded on load (:func:`world_r1.hparams.upgrade_reward`).
"""

from world_r1.rewards.trajectory.base import CameraTrajectoryReward
from world_r1.rewards.trajectory.estimated import PATH_ANCHORS, EstimatedPathReward
from world_r1.rewards.trajectory.flow import FlowTrajectoryReward
from world_r1.rewards.trajectory.release import ReleaseTrajectoryReward
from world_r1.rewards.trajectory.shape import PathShapeReward

#: the class of each form of the former ``TrajectoryReward(form=...)``
TRAJECTORY_FORMS: dict[str, type[CameraTrajectoryReward]] = {
    "flow": FlowTrajectoryReward,
    "path": ReleaseTrajectoryReward,
    "shape": PathShapeReward,
}

__all__ = [
    "PATH_ANCHORS",
    "TRAJECTORY_FORMS",
    "CameraTrajectoryReward",
    "EstimatedPathReward",
    "FlowTrajectoryReward",
    "PathShapeReward",
    "ReleaseTrajectoryReward",
]
