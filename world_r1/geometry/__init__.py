"""The geometry core shared by rewards and evaluation metrics: pairs, features, matches, two-view geometry."""

from world_r1.geometry.corners import CornerDetector
from world_r1.geometry.depth import DepthSource, TriangulatedDepth
from world_r1.geometry.depth_model import ModelDepth
from world_r1.geometry.epipolar import EpipolarEstimator, PairGeometry
from world_r1.geometry.frames import anchor_pairs, frame_pairs, gap_frames, grayscale_resized, resized
from world_r1.geometry.lpips import LPIPS
from world_r1.geometry.matching import Features, PairMatches, SIFTDetector, match_pairs
from world_r1.geometry.perceptual import PerceptualDistance
from world_r1.geometry.pose import intrinsics_from_fov, relative_pose, rotation_angle_deg, triangulate
from world_r1.geometry.video import DETECTORS, GeometrySettings, VideoGeometry, analyse, detect

__all__ = [
    "DETECTORS",
    "LPIPS",
    "CornerDetector",
    "DepthSource",
    "EpipolarEstimator",
    "Features",
    "GeometrySettings",
    "ModelDepth",
    "PairGeometry",
    "PairMatches",
    "PerceptualDistance",
    "SIFTDetector",
    "TriangulatedDepth",
    "VideoGeometry",
    "analyse",
    "anchor_pairs",
    "detect",
    "frame_pairs",
    "gap_frames",
    "grayscale_resized",
    "intrinsics_from_fov",
    "match_pairs",
    "relative_pose",
    "resized",
    "rotation_angle_deg",
    "triangulate",
]
