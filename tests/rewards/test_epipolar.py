"""The epipolar reward on rendered scenes with known geometry: rigid beats morphed beats unrelated, static earns
nothing, degenerate input stays finite, and the estimated camera rotation matches the rendered one."""

import pytest
import torch

from world_r1.geometry import EpipolarEstimator, SIFTDetector, analyse_videos, relative_pose, rotation_angle_deg
from world_r1.rewards import EpipolarReward, MotionReward
from world_r1.synthetic import morph, rigid_video, unrelated_frames

SIZE, FRAMES = 128, 12


@pytest.fixture(scope="module")
def reward() -> EpipolarReward:
    return EpipolarReward()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rigid_beats_morphed_beats_unrelated(reward, seed):
    rigid = rigid_video(FRAMES, SIZE, SIZE, seed=seed).video
    amplitudes = [0, 2, 4, 8]
    videos = torch.stack(
        [morph(rigid, a, seed=seed) for a in amplitudes] + [unrelated_frames(FRAMES, SIZE, SIZE, seed)]
    )
    out = reward(videos, [""] * len(videos))
    score = out["score"]
    assert torch.all(score[:-1][1:] < score[:-1][:-1]), f"must fall as the warp grows: {score.tolist()}"
    assert score[0] > 0.9 and score[-1] < score[3], score.tolist()
    assert torch.all(out["degenerate"][:4] == 0)
    assert out["sampson_px"][0] < out["sampson_px"][3]


def test_static_video_earns_no_3d_credit(reward):
    static = rigid_video(FRAMES, SIZE, SIZE, seed=0, static=True).video
    out = reward(static[None], [""])
    assert out["inlier_ratio"][0] > 0.9  # perfectly consistent ...
    assert out["score"][0] == 0  # ... and still worthless
    assert MotionReward()(static[None], [""])["score"][0] == 0


@pytest.mark.parametrize(
    "video",
    [
        torch.zeros(FRAMES, 3, SIZE, SIZE),
        torch.full((FRAMES, 3, SIZE, SIZE), 0.5),
        torch.rand(FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)),
        torch.rand(1, 3, SIZE, SIZE),
    ],
    ids=["black", "constant", "noise", "one-frame"],
)
def test_degenerate_inputs_give_finite_worst_case(reward, video):
    out = reward(video[None], [""])
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    assert out["score"][0] <= 0.2
    if video.shape[0] == 1 or video.std() == 0:
        assert out["degenerate"][0] == 1 and out["score"][0] == 0


def test_estimated_rotation_matches_the_rendered_camera():
    scene = rigid_video(9, 192, 192, seed=3)
    analysis = analyse_videos(
        scene.video[None], SIFTDetector(1024), EpipolarEstimator(), gaps=(8,), max_pairs=1, max_side=192
    )
    assert analysis.scale == 1.0 and analysis.geometry.valid.all()
    x1, x2 = analysis.matches.of_pair(0)
    rotation, translation = relative_pose(analysis.geometry.fundamental[0], scene.intrinsics, x1, x2)
    i, j = analysis.pairs[0].tolist()
    true_relative = scene.poses[j] @ torch.linalg.inv(scene.poses[i])
    error = rotation_angle_deg(rotation @ true_relative[:3, :3].T)
    assert rotation_angle_deg(true_relative[:3, :3]) > 4.0  # there is a real rotation to recover
    assert error < 2.0, error
    true_direction = true_relative[:3, 3] / true_relative[:3, 3].norm()
    assert torch.dot(translation, true_direction) > 0.9
