"""Synthetic videos with known geometry: rigid scenes, morphed (3D-inconsistent) versions, unrelated frames,
camera-motion worlds (prompts whose words define a scene, rendered consistently or not) for training mini models, and
layered-depth clips cut from real photographs for validating the rewards (:mod:`world_r1.synthetic.photos`)."""

from world_r1.synthetic.inconsistency import INCONSISTENCY_KINDS, Distortion, make_distortion
from world_r1.synthetic.scenes import SyntheticVideo, camera_path, morph, render, rigid_video, unrelated_frames
from world_r1.synthetic.worlds import (
    CAMERA_SENTENCES,
    HELD_OUT_SCENES,
    TRAIN_SCENES,
    SceneSpec,
    SyntheticWorld,
    World,
    WorldConfig,
    build_world,
    parse_scene,
    prompt_file_text,
    render_prompt,
    render_world,
    split_prompt,
    world_prompts,
    write_prompt_files,
)

__all__ = [
    "CAMERA_SENTENCES",
    "HELD_OUT_SCENES",
    "INCONSISTENCY_KINDS",
    "TRAIN_SCENES",
    "Distortion",
    "SceneSpec",
    "SyntheticVideo",
    "SyntheticWorld",
    "World",
    "WorldConfig",
    "build_world",
    "camera_path",
    "make_distortion",
    "morph",
    "parse_scene",
    "prompt_file_text",
    "render",
    "render_prompt",
    "render_world",
    "rigid_video",
    "split_prompt",
    "unrelated_frames",
    "world_prompts",
    "write_prompt_files",
]
