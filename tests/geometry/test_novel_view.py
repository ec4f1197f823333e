"""Novel views of a reconstructed pair: the camera half way along the motion, and the z-buffered splat of both
frames, checked against the frames the photograph renderer draws from those cameras."""

import pytest
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from world_r1.camera.trajectory import relative_motion
from world_r1.geometry.novel_view import camera_along, fill_small_holes, render_novel_view, splat
from world_r1.geometry.pose import rotation_angle_deg
from world_r1.synthetic.photos import PhotoClipSpec, render_photo_clip


def test_camera_along_runs_from_camera_i_to_camera_j():
    axis = torch.nn.functional.normalize(torch.tensor([[0.2, 1.0, 0.1]]), dim=1)
    rotation = axis_angle_to_rotation_matrix(axis * 0.3)
    translation = torch.tensor([[0.5, -0.1, 0.2]])
    r0, t0 = camera_along(rotation, translation, 0.0)
    r1, t1 = camera_along(rotation, translation, 1.0)
    torch.testing.assert_close(r0, torch.eye(3)[None], atol=1e-6, rtol=0)
    torch.testing.assert_close(t0, torch.zeros(1, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(r1, rotation, atol=1e-5, rtol=0)
    torch.testing.assert_close(t1, translation, atol=1e-5, rtol=0)
    half, _ = camera_along(rotation, translation, 0.5)
    assert float(rotation_angle_deg(half[0])) == pytest.approx(float(rotation_angle_deg(rotation[0])) / 2, rel=1e-3)


def test_splat_keeps_the_nearest_point_of_each_pixel():
    intrinsics = torch.tensor([[10.0, 0.0, 4.0], [0.0, 10.0, 4.0], [0.0, 0.0, 1.0]])
    # two points on the optical axis, the nearer red, and one behind the camera that must not show
    points = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]])
    colors = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    image, covered = splat(points, colors, intrinsics, (9, 9))
    assert int(covered.sum()) == 4  # one 2x2 footprint
    assert torch.equal(image[0, :, 4, 4], torch.tensor([1.0, 0.0, 0.0]))
    assert float(image[0, 1].sum()) == 0.0


@pytest.mark.parametrize("camera", ["Camera trucks left.", "Camera pans right.", "Camera orbits right."])
def test_the_half_way_view_of_a_rigid_clip_matches_the_frame_rendered_there(camera):
    spec = PhotoClipSpec(("chelsea", "coins", "rocket"), camera, num_frames=9, size=(96, 128), seed=3)
    clip = render_photo_clip(spec)
    rotation, translation = relative_motion(clip.poses.double(), torch.tensor([0]), torch.tensor([8]))
    view, covered = render_novel_view(
        clip.video[:1],
        clip.video[8:],
        clip.depth[:1],
        clip.depth[8:],
        rotation.float(),
        translation.float(),
        clip.intrinsics[0],
        0.5,
    )
    view = fill_small_holes(view, covered)
    middle, first = clip.video[4:5], clip.video[:1]
    assert covered.float().mean() > 0.8
    error = (view - middle).abs().mean(1, keepdim=True)[covered]
    copy = (first - middle).abs().mean(1, keepdim=True)[covered]
    assert error.median() < 0.25 * copy.median()  # the view is the middle frame, not a copy of the first


def test_fill_small_holes_fills_cracks_and_leaves_unseen_regions_empty():
    image = torch.ones(1, 3, 8, 8)
    covered = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    covered[..., 2, 2] = False  # a crack
    covered[..., :, 5:] = False  # a region nothing saw
    filled = fill_small_holes(image * covered, covered)
    assert float(filled[0, 0, 2, 2]) == pytest.approx(1.0)
    assert float(filled[0, 0, 0, 7]) == 0.0
