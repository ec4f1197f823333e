"""The path forms of S_traj against values computed by hand for known paths: World-R1's release formula and the
scale-free shape form, the Umeyama alignment under both, and the focal length read off two-view geometry."""

import math

import pytest
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from world_r1.geometry.path import estimate_focal_length, umeyama
from world_r1.geometry.pose import intrinsics_from_fov
from world_r1.rewards.path_scores import PathPair, release_score, shape_score

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


def test_the_right_path_at_another_speed_scores_one_in_both_forms():
    paths = PathPair(2 * TRUCK, TRUCK, EYE, EYE)
    assert release_score(paths)["score"] == pytest.approx(1.0)
    assert shape_score(paths)["score"] == pytest.approx(1.0)


def test_the_mirrored_truck_by_hand():
    paths = PathPair(-0.5 * TRUCK, TRUCK, EYE, EYE)
    release = release_score(paths)
    # cos -1; the scale stops at 0, so the aligned path sits at the intended mean (1, 0, 0): length ratio 1e-6, mean
    # distance (1 + 0 + 1) / 3 over len_gt = 2; the rotations agree exactly
    translation = -0.4 + 0.3 * 1e-6 + 0.3 * math.exp(-(1 / 3) / 2)
    assert release["direction"] == pytest.approx(-1.0)
    assert release["translation"] == pytest.approx(translation, abs=1e-6)
    assert release["score"] == pytest.approx(0.5 * (translation + 1.0), abs=1e-6)
    assert shape_score(paths)["score"] == 0.0  # travel the wrong way: nothing


def test_a_pan_at_half_the_intended_angle_by_hand():
    paths = PathPair(STILL, STILL, yaw(0.0, 5.0, 10.0), yaw(0.0, 10.0, 20.0))
    release = release_score(paths)
    # no travel intended or made: trans 1; geodesic errors 0, 5, 10 degrees (mean 5, final 10), extent 10 / 20
    rotation = 0.5 * math.exp(-5 / 6) + 0.3 * math.exp(-10 / 6) + 0.2 * 0.5
    assert release["rotation"] == pytest.approx(rotation, rel=1e-4)
    assert release["score"] == pytest.approx(0.5 * (1.0 + rotation), rel=1e-4)
    assert release["rotation_error_deg"] == pytest.approx(5.0, rel=1e-4)
    # the shape form is free of the turning's scale: the right way at half the angle is the right camera
    assert shape_score(paths)["score"] == pytest.approx(1.0, abs=1e-6)
    assert shape_score(PathPair(STILL, STILL, yaw(0.0, -5.0, -10.0), yaw(0.0, 10.0, 20.0)))["score"] == 0.0


def test_travel_where_none_is_intended_costs_by_its_length():
    paths = PathPair(0.025 * TRUCK, STILL, EYE, EYE)  # 0.05 median depths of travel
    assert release_score(paths)["translation"] == pytest.approx(math.exp(-1.0))
    assert shape_score(paths)["score"] == pytest.approx(math.exp(-1.0))
    turning = PathPair(STILL, STILL, yaw(0.0, 1.5, 3.0), EYE)  # mean 1.5 degrees where none is intended
    assert shape_score(turning)["rotation"] == pytest.approx(math.exp(-1.5 / 3.0), rel=1e-4)


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
    assert release_score(PathPair(STILL, STILL, EYE, EYE, zoom_in, None))["score"] == 1.0  # the release: no lens


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
