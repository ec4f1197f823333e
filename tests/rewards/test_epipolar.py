"""The epipolar reward on rendered scenes with known geometry: rigid beats morphed beats unrelated, static earns
nothing, and the estimated camera rotation matches the rendered one (degenerate inputs: test_robustness.py)."""

import pytest
import torch

from tests.rewards.conftest import AMPLITUDES
from world_r1.geometry import GeometrySettings, analyse, relative_pose, rotation_angle_deg
from world_r1.rewards import EpipolarReward, MotionReward
from world_r1.synthetic import rigid_video


@pytest.fixture(scope="module")
def reward() -> EpipolarReward:
    return EpipolarReward()


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_rigid_beats_morphed_beats_unrelated(reward, scene_batch):
    out = reward(scene_batch, [""] * len(scene_batch))
    score = out["score"][: len(AMPLITUDES) + 1]  # morphs by growing amplitudes, then unrelated frames
    assert torch.all(score[1:-1] < score[:-2]), f"must fall as the warp grows: {score.tolist()}"
    assert score[0] > 0.9 and score[-1] < score[-2], score.tolist()
    assert torch.all(out["degenerate"][: len(AMPLITUDES)] == 0)
    assert out["sampson_px"][0] < out["sampson_px"][len(AMPLITUDES) - 1]
    # the static camera (last video) is perfectly consistent and still earns nothing
    assert out["inlier_ratio"][-1] > 0.9
    assert out["score"][-1] == 0
    assert MotionReward()(scene_batch[-1:], [""])["score"][0] == 0


def test_estimated_rotation_matches_the_rendered_camera():
    scene = rigid_video(9, 192, 192, seed=3)
    settings = GeometrySettings(gaps=(1.0,), max_pairs=1, max_side=192, num_features=1024)
    analysis = analyse(scene.video[None], settings)
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


def test_motion_credit_ramps_with_the_inlier_ratio_instead_of_flipping_at_the_threshold():
    from world_r1.rewards.epipolar import coherence_ramp

    ratios = torch.tensor([0.3, 0.45, 0.5, 0.55, 0.7])
    assert torch.allclose(coherence_ramp(ratios, 0.5, 0.2), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert coherence_ramp(ratios, 0.5, 0.0).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # width 0: the hard threshold
    with pytest.raises(ValueError, match="coherence_width"):
        MotionReward(coherence_width=-0.1)


def test_motion_of_a_rigid_moving_scene_earns_full_credit_and_of_noise_none():
    moving = rigid_video(9, 128, 128, seed=1).video[None]
    noise = torch.rand(1, 9, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    scores = MotionReward()(torch.cat([moving, noise]), ["", ""])["score"]
    assert scores[0] > 0.95 and scores[1] == 0, scores.tolist()
