"""Camera plans to poses: World-R1's path (every phrase's final pose worked out by hand, chaining, its frame
schedule) and the classic convention (directions and amounts of every motion kind, sequencing, speeds,
frame-count consistency)."""

import math

import pytest
import torch

from world_r1.camera import (
    MotionScale,
    camera_to_world,
    camera_trajectory,
    forward_flow,
    parse_camera,
    relative_motion,
    release_frames,
    zoom_schedule,
    zoomed,
)
from world_r1.geometry import intrinsics_from_fov, rotation_angle_deg

CLASSIC = MotionScale(30.0, 30.0, 1.0, 4.0, 1.5, 1.0, "classic")  # the project's first convention and amounts
S14, C14, S24, C24 = (
    math.sin(math.radians(14)),
    math.cos(math.radians(14)),
    math.sin(math.radians(24)),
    math.cos(math.radians(24)),
)


@pytest.mark.parametrize(
    ("phrase", "rotation", "centre"),
    [
        ("push in", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], (0, 0, 600)),
        ("pull out", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], (0, 0, -600)),
        ("move left", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], (-220, 0, 0)),
        ("move right", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], (220, 0, 0)),
        ("pan left", [[C14, 0, -S14], [0, 1, 0], [S14, 0, C14]], (0, 0, 0)),  # looks 14 degrees toward -x
        ("pan right", [[C14, 0, S14], [0, 1, 0], [-S14, 0, C14]], (0, 0, 0)),
        # orbit left ends turned 24 degrees to the LEFT and displaced to the RIGHT and back, as the release's
        ("orbit left", [[C24, 0, -S24], [0, 1, 0], [S24, 0, C24]], (600 * S24, 0, 600 * (C24 - 1))),
        ("orbit right", [[C24, 0, S24], [0, 1, 0], [-S24, 0, C24]], (-600 * S24, 0, 600 * (C24 - 1))),
        ("fixed", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], (0, 0, 0)),
    ],
)
def test_every_release_phrase_ends_where_the_release_puts_it(phrase, rotation, centre):
    pose = camera_to_world(camera_trajectory(parse_camera(phrase), 81).double())[-1]  # camera-to-world, OpenCV axes
    torch.testing.assert_close(pose[:3, :3], torch.tensor(rotation, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(pose[:3, 3], torch.tensor(centre, dtype=torch.float64), rtol=0, atol=1e-3)
    if phrase == "orbit left":  # the numbers the release's own code prints
        torch.testing.assert_close(
            pose[:3, 3], torch.tensor([244.0, 0.0, -52.0], dtype=torch.float64), atol=0.2, rtol=0
        )


def test_release_movements_chain_in_the_camera_frame_where_the_last_ended():
    poses = camera_to_world(camera_trajectory(parse_camera("pan left, then push in"), 81).double())
    # the push travels 600 along the turned view: (-600 sin 14, 0, 600 cos 14)
    torch.testing.assert_close(poses[-1, :3, 3], torch.tensor([-600 * S14, 0.0, 600 * C14], dtype=torch.float64))
    halfway = camera_to_world(camera_trajectory(parse_camera("push in, then fixed"), 81).double())
    assert float(halfway[40, 2, 3]) == pytest.approx(600.0) and float(halfway[-1, 2, 3]) == pytest.approx(600.0)


def test_the_release_frame_schedule():
    # one movement: 81 frames at progress i / 80
    assert release_frames(1, 81) == [(0, i / 80) for i in range(81)]
    # three: 27 frames each, chained (the last of one and the first of the next are one pose), 81 in all
    frames = release_frames(3, 81)
    assert frames[26] == (0, 1.0) and frames[27] == (1, 0.0) and frames[-1] == (2, 1.0)
    # two: 41 frames each, 82 resampled to 81 by Python's rounding (half to even: 40.5 -> 40)
    frames = release_frames(2, 81)
    assert frames[40] == (0, 1.0) and frames[41] == (1, 1 / 40) and frames[-1] == (1, 1.0) and len(frames) == 81
    assert release_frames(2, 2) == [(0, 0.0), (1, 1.0)]  # at least 2 frames a movement, then resampled
    assert release_frames(0, 3) == [(0, 0.0)] * 3  # no camera


def test_speed_words_scale_a_release_movement_and_zooms_follow_its_schedule():
    poses = camera_to_world(camera_trajectory(parse_camera("move right slowly"), 81).double())
    assert float(poses[-1, 0, 3]) == pytest.approx(110.0)
    focal = zoom_schedule(parse_camera("zoom in, then fixed"), 81)
    assert float(focal[40]) == pytest.approx(1.5, rel=1e-6) and float(focal[-1]) == pytest.approx(1.5, rel=1e-6)


def centres(poses: torch.Tensor) -> torch.Tensor:
    """Camera centres (F, 3) in world coordinates from world-to-camera poses."""
    return -(poses[:, :3, :3].transpose(1, 2) @ poses[:, :3, 3:])[..., 0]


def forward_axes(poses: torch.Tensor) -> torch.Tensor:
    """Viewing directions (F, 3) in world coordinates (the camera's +z)."""
    return poses[:, 2, :3]


def test_static_plan_and_frame_zero_are_the_identity():
    for scale in (CLASSIC, MotionScale()):
        assert torch.equal(camera_trajectory(parse_camera("fixed"), 5, scale), torch.eye(4).expand(5, 4, 4))
        assert torch.allclose(camera_trajectory(parse_camera("orbit left"), 5, scale)[0], torch.eye(4), atol=1e-6)
        assert camera_trajectory(parse_camera("pan left"), 1, scale).shape == (1, 4, 4)


@pytest.mark.parametrize(
    ("text", "direction"),
    [("pan right", (1, 0)), ("pan left", (-1, 0)), ("tilt up", (0, -1)), ("tilt down", (0, 1))],
)
def test_rotations_turn_the_view_the_named_way_by_the_set_angle(text, direction):
    poses = camera_trajectory(parse_camera(text), 9, CLASSIC)
    view = forward_axes(poses)[-1]
    assert torch.allclose(centres(poses), torch.zeros(9, 3), atol=1e-5)  # turning in place
    assert float(rotation_angle_deg(poses[-1, :3, :3])) == pytest.approx(30.0, abs=1e-3)
    assert torch.allclose(view[:2], 0.5 * torch.tensor(direction, dtype=torch.float32), atol=1e-5)  # sin 30 deg


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("push in", (0, 0, 1)),
        ("pull back", (0, 0, -1)),
        ("truck right", (1, 0, 0)),
        ("truck left", (-1, 0, 0)),
        ("crane up", (0, -1, 0)),  # OpenCV: y points down
        ("pedestal down", (0, 1, 0)),
        ("push in slowly", (0, 0, 0.5)),
        ("push in quickly", (0, 0, 2)),
    ],
)
def test_translations_move_the_named_way_without_turning(text, end):
    poses = camera_trajectory(parse_camera(text), 9, CLASSIC)
    assert torch.allclose(centres(poses)[-1], torch.tensor(end, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(poses[:, :3, :3], torch.eye(3).expand(9, 3, 3), atol=1e-6)


@pytest.mark.parametrize("sign", [1, -1])
def test_orbit_circles_the_pivot_while_facing_it(sign):
    scale = MotionScale(orbit_deg=40.0, orbit_radius=4.0, convention="classic")
    poses = camera_trajectory(parse_camera("orbit right" if sign > 0 else "orbit left"), 9, scale)
    pivot = torch.tensor([0.0, 0.0, 4.0])
    offsets = pivot - centres(poses)
    assert torch.allclose(offsets.norm(dim=1), torch.full((9,), 4.0), atol=1e-4)
    assert torch.allclose(forward_axes(poses), offsets / 4.0, atol=1e-4)  # always looking at the pivot
    assert sign * float(centres(poses)[-1, 0]) == pytest.approx(4 * math.sin(math.radians(40)), abs=1e-4)


def test_segments_play_one_after_another():
    poses = camera_trajectory(parse_camera("push in, then pan right"), 9, CLASSIC)
    assert torch.allclose(centres(poses)[4], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)
    assert float(rotation_angle_deg(poses[4, :3, :3])) == pytest.approx(0.0, abs=1e-3)
    assert torch.allclose(centres(poses)[8], centres(poses)[4], atol=1e-5)
    assert float(rotation_angle_deg(poses[8, :3, :3])) == pytest.approx(30.0, abs=1e-3)


def test_simultaneous_motions_combine():
    poses = camera_trajectory(parse_camera("pan left while tilting up"), 9, CLASSIC)
    view = forward_axes(poses)[-1]
    assert view[0] < -0.4 and view[1] < -0.4  # left and up


def test_latent_frames_sample_the_pixel_path_every_fourth_frame():
    plan = parse_camera("slowly pan left while tilting up, then orbit right and crane up")
    pixel, latent = camera_trajectory(plan, 81, CLASSIC), camera_trajectory(plan, 21, CLASSIC)
    assert torch.allclose(pixel[::4], latent, atol=1e-4)


def test_relative_motion_follows_the_geometry_core_convention():
    poses = camera_trajectory(parse_camera("push in"), 5, CLASSIC)
    rotation, translation = relative_motion(poses, torch.tensor([0]), torch.tensor([4]))
    assert torch.allclose(rotation[0], torch.eye(3), atol=1e-6)
    assert torch.allclose(translation[0], torch.tensor([0.0, 0.0, -1.0]), atol=1e-5)  # X2 = X1 - (0, 0, 1)


def test_flow_of_a_pan_and_a_push():
    intrinsics = intrinsics_from_fov(60.0, 16, 16)
    pan = camera_trajectory(parse_camera("pan right"), 2, CLASSIC)
    targets, valid = forward_flow(pan[0], pan[1], intrinsics, 16, 16)
    assert valid.all()
    centre_shift = targets[8, 8, 0] - 8.5  # the pixel right of the centre moves left by ~ f tan(30 deg)
    expected = -float(intrinsics[0, 0]) * math.tan(math.radians(30.0))
    assert float(centre_shift) == pytest.approx(expected, rel=0.1)
    push = camera_trajectory(parse_camera("push in"), 2, CLASSIC)
    targets, _ = forward_flow(push[0], push[1], intrinsics, 16, 16)
    assert targets[15, 15, 1] > 15.5 and targets[15, 0, 0] < 0.5  # the ground below expands outwards


def test_a_zoom_scales_the_focal_length_not_the_pose():
    scale = MotionScale(zoom=1.5, convention="classic")
    plan = parse_camera("zoom in, then zoom out slowly")
    assert torch.equal(camera_trajectory(plan, 9, scale), torch.eye(4).expand(9, 4, 4))
    focal = zoom_schedule(plan, 9, scale)  # frames at t = k / 8; segment 1 ends at t = 0.5 (frame 4)
    expected = [1.5 ** (k / 4) for k in range(5)] + [1.5 * 1.5 ** (-0.5 * k / 4) for k in range(1, 5)]
    torch.testing.assert_close(focal, torch.tensor(expected), rtol=1e-6, atol=0)
    assert torch.equal(zoom_schedule(parse_camera("pan left"), 5, scale), torch.ones(5))
    assert zoom_schedule(parse_camera("zoom in quickly"), 3, scale)[-1] == pytest.approx(2.25)
    with pytest.raises(ValueError, match="zoom"):
        MotionScale(zoom=0.8)
    with pytest.raises(ValueError, match="convention"):
        MotionScale(convention="cinematic")


def test_flow_of_a_zoom_scales_about_the_centre_whatever_the_depth():
    intrinsics = intrinsics_from_fov(60.0, 16, 16)
    still = camera_trajectory(parse_camera("fixed"), 2, CLASSIC)
    targets, valid = forward_flow(still[0], still[1], intrinsics, 16, 16, intrinsics_to=zoomed(intrinsics, 2.0))
    v, u = torch.meshgrid(torch.arange(16) + 0.5, torch.arange(16) + 0.5, indexing="ij")
    expected = torch.stack([8 + 2 * (u - 8), 8 + 2 * (v - 8)], -1)  # ground and backdrop alike: no parallax
    assert valid.all() and torch.allclose(targets, expected, atol=1e-4)
