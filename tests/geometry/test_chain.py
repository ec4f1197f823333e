"""The chained camera path: steps composed with the scale carried through shared keypoints, and footage read right."""

import math
from dataclasses import replace

import pytest
import torch

from world_r1.geometry import GeometrySettings, analyse, intrinsics_from_fov
from world_r1.geometry.chain import _compose, _Step, estimate_chained_path, path_of
from world_r1.geometry.motion_models import PairMotion
from world_r1.synthetic.footage import FootageSpec, render_footage

EYE = torch.eye(3, dtype=torch.float64)


def _travel(direction, points_a, depth_a, points_b, depth_b) -> _Step:
    motion = PairMotion("translation", EYE, torch.tensor(direction, dtype=torch.float64), torch.ones(1), {})
    return _Step(motion, points_a, depth_a, points_b, depth_b)


def test_a_steps_length_is_carried_through_the_keypoints_it_shares_with_the_step_before():
    shared = torch.tensor([[10.0, 10.0], [20.0, 15.0], [30.0, 40.0], [50.0, 5.0], [60.0, 60.0]], dtype=torch.float64)
    others = shared + 100
    depth = torch.tensor([4.0, 5.0, 6.0, 7.0, 8.0], dtype=torch.float64)
    # step 1 moves 1 baseline forward; step 2's unit-baseline depths of the same points are half of step 1's:
    # its baseline is twice step 1's
    first = _travel([0.0, 0.0, -1.0], others, depth + 1, shared, depth)
    second = _travel([0.0, 0.0, -1.0], shared, depth / 2, others, depth / 2 - 1)
    path = _compose([first, second], torch.tensor([10, 20]), 100.0)
    lengths = torch.diff(torch.cat([torch.zeros(1, 3, dtype=torch.float64), path.centres]), dim=0).norm(dim=1)
    assert float(lengths[1] / lengths[0]) == pytest.approx(2.0)
    assert float(lengths[0]) == pytest.approx(1 / float((depth + 1).median()))  # unit: the first step's median depth
    assert bool(path.known.all()) and path.chained and bool((path.centres[:, 2] > 0).all())  # forward: +z


def test_a_lost_step_keeps_the_motion_before_it_and_is_marked_unknown():
    turn = PairMotion(
        "rotation",
        torch.linalg.matrix_exp(torch.tensor([[0, 0, 0.1], [0, 0, 0], [-0.1, 0, 0]], dtype=torch.float64)),
        torch.zeros(3, dtype=torch.float64),
        torch.ones(1),
        {},
    )
    path = _compose([_Step(turn), _Step(None), _Step(turn)], torch.tensor([5, 10, 15]), 100.0)
    assert path.known.tolist() == [True, False, True]
    angles = [math.degrees(math.acos((float(r.trace()) - 1) / 2)) for r in path.rotations]
    assert angles == pytest.approx([math.degrees(0.1), math.degrees(0.2), math.degrees(0.3)], rel=1e-6)
    assert float(path.centres.abs().max()) == 0.0


@pytest.fixture(scope="module")
def clips():
    base = FootageSpec(
        "",
        ("chelsea", "gravel", "coins", "rocket", "moon"),
        num_frames=17,
        size=(144, 256),
        moving_subjects=0,
        quality=90,
        seed=3,
    )
    return {camera: render_footage(replace(base, camera=camera)) for camera in ("Camera push in.", "Camera pan left.")}


def _turning_deg(path) -> float:
    rotation = path.rotations[-1]
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(rotation.trace()) - 1) / 2))))


def test_footage_push_in_reads_as_travel_forward_without_turning(clips):
    clip = clips["Camera push in."]
    analysis = analyse(clip.video[None], GeometrySettings(max_side=192, anchors=4, path_pairs="consecutive"))
    path = estimate_chained_path(analysis, 0, intrinsics_from_fov(60.0, *analysis.size))
    assert bool(path.known.all())
    assert _turning_deg(path) < 2.0
    direction = path.centres[-1] / path.centres[-1].norm()
    assert float(direction[2]) > 0.9


def test_footage_pan_reads_as_a_turn_of_about_the_right_size_without_travel(clips):
    clip = clips["Camera pan left."]
    analysis = analyse(clip.video[None], GeometrySettings(max_side=192, anchors=4, path_pairs="consecutive"))
    path = path_of("chained", analysis, 0, intrinsics_from_fov(clip.spec.fov_deg, *analysis.size))
    assert _turning_deg(path) == pytest.approx(14.0, rel=0.2)
    assert float(path.centres.norm(dim=1).max()) < 0.05
    assert float(path.rotations[-1][2, 0]) < 0  # world-to-camera: the view's axis turned to -x, left


def test_the_estimators_refuse_an_analysis_made_for_the_other():
    video = torch.rand(1, 5, 3, 32, 32)
    analysis = analyse(video, GeometrySettings(anchors=2, path_pairs="first"))
    with pytest.raises(ValueError, match="path_pairs='consecutive'"):
        path_of("chained", analysis, 0, intrinsics_from_fov(60.0, *analysis.size))
    with pytest.raises(ValueError, match="unknown path estimator"):
        path_of("psychic", analysis, 0, intrinsics_from_fov(60.0, *analysis.size))
