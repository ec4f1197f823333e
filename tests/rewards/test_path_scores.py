"""The path forms of S_traj against values computed by hand for known paths: World-R1's release formula (static
target, pure turn, pure travel, both, reversed travel, doubled length, its tolerance and its RANSAC alignment) and the
scale-free shape form, the Umeyama alignment, and the focal length read off two-view geometry."""

import math

import pytest
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from world_r1.geometry.path import estimate_focal_length, umeyama
from world_r1.geometry.pose import intrinsics_from_fov
from world_r1.rewards.path_scores import (
    PathPair,
    relative_to_first,
    release_align,
    release_score,
    release_trajectory_score,
    shape_score,
)

TRUCK = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])  # frame 0 and two cameras to the right
STILL = torch.zeros(3, 3)
EYE = torch.eye(3).repeat(3, 1, 1)


def yaw(*degrees: float) -> torch.Tensor:
    angles = torch.tensor([[0.0, math.radians(d), 0.0] for d in degrees])
    return axis_angle_to_rotation_matrix(angles).double()


def test_umeyama_recovers_a_similarity():
    source = torch.randn(10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rotation = yaw(40.0)[0]
    target = 2.5 * source @ rotation.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    s, r, t = umeyama(source, target)
    assert float(s) == pytest.approx(2.5) and torch.allclose(r, rotation, atol=1e-6)
    assert torch.allclose(t, torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), atol=1e-6)
    s, r, _ = umeyama(source, -target, rotation=False)  # only a mirror would fit: the scale stops at 0
    assert float(s) == 0.0 and torch.equal(r, torch.eye(3, dtype=torch.float64))


def poses(centres: list[tuple[float, float, float]], yaws: list[float] | None = None) -> torch.Tensor:
    """Camera-to-world poses (F, 4, 4): centres and, turned about the vertical axis, rotations (degrees)."""
    out = torch.eye(4, dtype=torch.float64).repeat(len(centres), 1, 1)
    out[:, :3, 3] = torch.tensor(centres, dtype=torch.float64)
    if yaws is not None:
        out[:, :3, :3] = yaw(*yaws)
    return out


PUSH = [(0.0, 0.0, 0.0), (0.0, 0.0, 300.0), (0.0, 0.0, 600.0)]  # push in, in the release's units
STAY = [(0.0, 0.0, 0.0)] * 3


def test_the_release_formula_on_a_static_target_by_hand():
    # the target neither travels nor turns: T = exp(-L_pred / 3), Q = exp(-A_pred / 5), score T * Q
    out = release_score(poses([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 2.0)], [0.0, 5.0, 5.0]), poses(STAY))
    assert out["translation"] == pytest.approx(math.exp(-2 / 3))
    assert out["rotation"] == pytest.approx(math.exp(-5 / 5), rel=1e-6)
    assert out["score"] == pytest.approx(math.exp(-2 / 3) * math.exp(-1), rel=1e-6)
    assert release_score(poses(STAY), poses(STAY))["score"] == 1.0


def test_the_release_formula_on_a_pure_turn_by_hand():
    # a pan at half the angle: errors 0, 5, 10 degrees (mean 5, last 10), turning 10 against 20
    # only turns: 0.2 T + 0.8 Q
    out = release_score(poses(STAY, [0.0, 5.0, 10.0]), poses(STAY, [0.0, 10.0, 20.0]))
    turn = 0.5 * math.exp(-5 / 6) + 0.3 * math.exp(-10 / 6) + 0.2 * 0.5
    assert out["rotation"] == pytest.approx(turn, rel=1e-5) and out["translation"] == 1.0
    assert out["score"] == pytest.approx(0.2 + 0.8 * turn, rel=1e-5)


def test_the_release_formula_on_pure_travel_reversed_and_doubled_by_hand():
    assert release_score(poses(PUSH), poses(PUSH))["score"] == pytest.approx(1.0)
    # reversed: cos -1 (0 of its 0.4), equal lengths (0.3), mean error (0 + 600 + 1200) / 3 = 600 over the
    # tolerance 2 max(600 / 2, 1) = 600; only travels: 0.8 T + 0.2 Q with Q = 1
    back = release_score(poses([(x, y, -z) for x, y, z in PUSH]), poses(PUSH))
    travel = 0.3 + 0.3 * math.exp(-1.0)
    assert back["direction"] == pytest.approx(-1.0) and back["translation"] == pytest.approx(travel, rel=1e-6)
    assert back["score"] == pytest.approx(0.8 * travel + 0.2, rel=1e-6)
    # doubled: cos 1 (0.4), length ratio 2 (0.3 / 2), mean error (0 + 300 + 600) / 3 = 300 over 600
    double = release_score(poses([(x, y, 2 * z) for x, y, z in PUSH]), poses(PUSH))
    travel = 0.4 + 0.15 + 0.3 * math.exp(-0.5)
    assert double["translation"] == pytest.approx(travel, rel=1e-6)
    assert double["score"] == pytest.approx(0.8 * travel + 0.2, rel=1e-6)


def test_the_release_formula_on_travel_and_turning_by_hand():
    target = poses(PUSH, [0.0, 10.0, 20.0])
    assert release_score(target, target)["score"] == pytest.approx(1.0)
    # the right travel without the turn: errors 0, 10, 20 (mean 10, last 20), turning 0 against 20: both, 0.5 (T + Q)
    out = release_score(poses(PUSH), target)
    turn = 0.5 * math.exp(-10 / 6) + 0.3 * math.exp(-20 / 6) + 0.2 * (1e-6 / (20 + 1e-6))
    assert out["translation"] == pytest.approx(1.0) and out["rotation"] == pytest.approx(turn, rel=1e-5)
    assert out["score"] == pytest.approx(0.5 * (1.0 + turn), rel=1e-5)


def test_the_tolerance_is_the_targets_length_per_pose_step():
    # the same three poses scored as three, or as the release's 81 frames: the error tolerance shrinks 40-fold
    back = [(x, y, -z) for x, y, z in PUSH]
    loose, tight = release_score(poses(back), poses(PUSH)), release_score(poses(back), poses(PUSH), steps=80)
    assert tight["translation"] == pytest.approx(0.3 + 0.3 * math.exp(-600 / (2 * max(600 / 80, 1))), rel=1e-6)
    assert tight["score"] < loose["score"]


def test_the_release_alignment_and_a_prompt_without_camera():
    # a curved path (a straight one leaves the roll about it free, for the release as here)
    target = poses([(40.0 * k, 5.0 * k * k, 30.0 * k) for k in range(8)], [3.0 * k for k in range(8)])
    # the estimate: the same path at a third of the scale, turned 30 degrees and moved, as a reconstruction gives it
    turn = torch.eye(4, dtype=torch.float64)
    turn[:3, :3] = yaw(30.0)[0]
    estimate = target.clone()
    estimate[:, :3, 3] /= 3
    estimate = turn @ estimate
    estimate[:, :3, 3] += torch.tensor([5.0, 1.0, -2.0], dtype=torch.float64)
    aligned = release_align(estimate, target)
    torch.testing.assert_close(aligned, target, rtol=0, atol=1e-6)
    estimate[5, :3, 3] += 500.0  # one wild pose: the RANSAC (>= 6 poses) leaves it out
    aligned = release_align(estimate, target)
    keep = torch.arange(8) != 5
    torch.testing.assert_close(aligned[keep], target[keep], rtol=0, atol=1e-6)
    assert release_trajectory_score(target, target)["score"] == pytest.approx(1.0)
    assert release_trajectory_score(target, target, has_camera=False)["score"] == 0.0  # no camera words: 0


def test_the_opposite_orbit_has_the_right_travel_and_the_wrong_turning():
    arc = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.03], [1.0, 0.0, 0.13]])
    paths = PathPair(arc, arc, yaw(0.0, 7.0, 14.0), yaw(0.0, -7.0, -14.0))
    shape = shape_score(paths)
    assert shape["translation"] == pytest.approx(1.0) and shape["turning"] == pytest.approx(-1.0)
    assert shape["score"] == 0.0


def test_zooms_are_compared_in_log_scale_free_of_their_amount():
    zoom_in, stronger = torch.tensor([1.0, 1.1, 1.21]), torch.tensor([1.0, 1.2, 1.44])  # constant rates, in log
    shape = shape_score(PathPair(STILL, STILL, EYE, EYE, zoom_in, stronger))
    assert shape["zoom"] == pytest.approx(1.0) and shape["score"] == pytest.approx(1.0)
    opposite = shape_score(PathPair(STILL, STILL, EYE, EYE, 1 / zoom_in, stronger))
    assert opposite["zooming"] == pytest.approx(-1.0) and opposite["score"] == 0.0
    # a dolly in has travel and no lens change: against "zoom in" it has neither the zoom nor the stillness
    assert shape_score(PathPair(TRUCK.roll(1, 1), STILL, EYE, EYE, None, stronger))["score"] == 0.0
    # a zoom of 1.1 and 1.21 where none is intended: mean |ln z| = (0 + ln 1.1 + ln 1.21) / 3 = ln 1.1
    unwanted = shape_score(PathPair(STILL, STILL, EYE, EYE, zoom_in, None))
    assert unwanted["zoom"] == pytest.approx(math.exp(-math.log(1.1) / 0.05)) and unwanted["zooming"] == 1.0
    eye = torch.eye(4).repeat(3, 1, 1)
    assert release_score(eye, eye)["score"] == 1.0  # the release has no lens: a zoom is no camera motion to it


def test_paths_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="PathPair"):
        PathPair(TRUCK, TRUCK[:2], EYE, EYE)
    with pytest.raises(ValueError, match="zooms"):
        PathPair(TRUCK, TRUCK, EYE, EYE, torch.ones(2))


@pytest.mark.parametrize("true_fov", [45.0, 75.0, 95.0])
def test_the_focal_length_is_read_off_the_anchors(true_fov):
    """Fundamental matrices and homographies made with one lens give it back from a wrong assumed one."""
    truth = intrinsics_from_fov(true_fov, 96, 128).double()
    inverse = torch.linalg.inv(truth)
    fundamentals = []
    for angle, travel in [(3.0, (1.0, 0.2, 0.1)), (-5.0, (0.3, -0.5, 1.0)), (8.0, (-1.0, 0.0, 0.4))]:
        rotation = yaw(angle)[0]
        t = torch.tensor(travel, dtype=torch.float64)
        cross = torch.tensor([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]], dtype=torch.float64)
        fundamentals.append(inverse.T @ cross @ rotation @ inverse)
    assumed = intrinsics_from_fov(60.0, 96, 128)
    found = estimate_focal_length(torch.stack(fundamentals), torch.zeros(0, 3, 3, dtype=torch.float64), assumed)
    assert float(found[0, 0]) == pytest.approx(float(truth[0, 0]), rel=0.03)
    turning = torch.stack([truth @ yaw(a)[0] @ inverse for a in (4.0, 9.0)])
    found = estimate_focal_length(torch.zeros(0, 3, 3, dtype=torch.float64), turning, assumed)
    assert float(found[0, 0]) == pytest.approx(float(truth[0, 0]), rel=0.03)
    nothing = torch.zeros(0, 3, 3, dtype=torch.float64)
    assert torch.equal(estimate_focal_length(nothing, nothing, assumed), assumed)


def test_the_alignment_survives_a_path_that_stands_still_for_several_poses():
    """Travel then a pan: the estimate's centres coincide over the pan. A RANSAC draw of only those poses has no
    similarity (the release's Umeyama would divide by their zero spread): it must not collapse the path onto a point."""
    centres = [  # a chained estimate of "move left, then pan right" on a footage clip
        [0.0, 0.0, 0.0],
        [-1.1017e-02, 1.4592e-05, -1.5535e-04],
        [-2.2132e-02, 1.2045e-05, -2.0346e-04],
        [-3.3233e-02, -2.3186e-05, 4.6299e-05],
        *[[-4.4144e-02, 1.0104e-05, -2.0994e-04]] * 5,
    ]
    predicted = torch.eye(4, dtype=torch.float64).repeat(9, 1, 1)
    predicted[:, :3, 3] = torch.tensor(centres, dtype=torch.float64)
    target = torch.eye(4, dtype=torch.float64).repeat(9, 1, 1)
    target[:, 0, 3] = torch.tensor([0.0, -55, -110, -165, -220, -220, -220, -220, -220], dtype=torch.float64)
    aligned = release_align(predicted, target)
    assert float((aligned[:, :3, 3] - target[:, :3, 3]).norm(dim=1).max()) < 2.0
    assert release_score(relative_to_first(aligned), relative_to_first(target), 80)["translation"] > 0.95
