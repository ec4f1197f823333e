"""Densified depth, two-view reconstruction and re-rendering against the rendered scenes' true depth and poses."""

import pytest
import torch

from world_r1.geometry import GeometrySettings, analyse
from world_r1.geometry.depth import TriangulatedDepth, densify_inverse_depth, sample_at
from world_r1.geometry.depth_model import fit_scale_shift
from world_r1.geometry.pose import rotation_angle_deg
from world_r1.geometry.reprojection import depth_agreement, photometric_agreement, reconstruct_pair, reproject
from world_r1.synthetic import rigid_video

SIZE = 128


def kornia_intrinsics(intrinsics: torch.Tensor) -> torch.Tensor:
    """The renderer puts pixel centres at +0.5; Kornia at integers."""
    shifted = intrinsics.clone()
    shifted[:2, 2] -= 0.5
    return shifted


@pytest.fixture(scope="module")
def scene():
    return rigid_video(9, SIZE, SIZE, seed=3)


@pytest.fixture(scope="module")
def reconstruction(scene):
    analysis = analyse(scene.video[None], GeometrySettings(gaps=(1.0,), max_pairs=1))
    assert analysis.scale == 1.0 and analysis.geometry.valid.all()
    x_i, x_j = analysis.matches.of_pair(0)
    rec = reconstruct_pair(analysis.geometry.fundamental[0], kornia_intrinsics(scene.intrinsics), x_i, x_j)
    assert rec is not None
    return rec


def true_relative(scene, i=0, j=8):
    return scene.poses[j] @ torch.linalg.inv(scene.poses[i])


def test_plane_inverse_depth_is_interpolated_exactly():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(200, 2, generator=generator) * torch.tensor([95.0, 63.0])
    plane = lambda xy: 0.2 + 0.003 * xy[..., 0] - 0.002 * xy[..., 1]  # noqa: E731  inverse depth of a plane
    dense = densify_inverse_depth(points, plane(points), (64, 96), stride=2)
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(96.0), indexing="ij")
    truth = plane(torch.stack([xs, ys], -1))
    inside = (xs > 10) & (xs < 85) & (ys > 10) & (ys < 53)
    assert (dense - truth)[inside].abs().max() < 1e-3
    assert dense.min() >= plane(points).min() - 1e-6 and dense.max() <= plane(points).max() + 1e-6


def test_fit_scale_shift_recovers_an_affine_map_despite_outliers():
    prediction = torch.linspace(0.1, 2.0, 50)
    target = 3.0 * prediction + 0.5
    target[::10] += 5.0  # mismatches
    scale, shift = fit_scale_shift(prediction, target)
    assert scale == pytest.approx(3.0, rel=1e-3) and shift == pytest.approx(0.5, rel=1e-2)
    assert fit_scale_shift(torch.ones(20), target[:20])[0] == 0.0  # flat prediction: constant fallback
    assert fit_scale_shift(-prediction, target)[0] == 0.0  # inverted prediction: constant fallback


def test_relative_pose_and_triangulated_depth_match_the_rendered_camera(scene, reconstruction):
    truth = true_relative(scene)
    assert rotation_angle_deg(truth[:3, :3]) > 4.0
    assert rotation_angle_deg(reconstruction.rotation @ truth[:3, :3].T) < 2.0
    baseline = truth[:3, 3].norm()
    assert torch.dot(reconstruction.translation, truth[:3, 3] / baseline) > 0.9
    true_depth = sample_at(scene.depth[0], reconstruction.points_i)[:, 0]
    relative = (reconstruction.depth_i * baseline / true_depth - 1).abs()
    assert relative.median() < 0.05, relative.median()


def test_triangulated_depth_densifies_close_to_the_true_depth(scene, reconstruction):
    rec = reconstruction
    depth = TriangulatedDepth()(scene.video[[0]], [rec.points_i], [rec.depth_i])
    assert depth.shape == (1, 1, SIZE, SIZE) and torch.isfinite(depth).all() and (depth > 0).all()
    baseline = true_relative(scene)[:3, 3].norm()
    relative = (depth[0, 0] * baseline / scene.depth[0, 0] - 1).abs()
    assert relative.median() < 0.1, relative.median()
    with pytest.raises(ValueError, match="anchors"):
        TriangulatedDepth()(scene.video[[0]], [rec.points_i[:3]], [rec.depth_i[:3]])


def test_rerendering_with_true_depth_and_pose_reproduces_the_frame(scene):
    truth = true_relative(scene, 0, 4)
    frames, depth = scene.video[[0]], scene.depth[[0]].clamp(max=100)
    result = reproject(
        frames,
        depth,
        scene.depth[[4]].clamp(max=100),
        truth[None, :3, :3],
        truth[None, :3, 3],
        kornia_intrinsics(scene.intrinsics),
    )
    psnr, ssim = photometric_agreement(result.image, scene.video[[4]], result.valid)
    assert result.valid.float().mean() > 0.7
    assert psnr[0] > 28 and ssim[0] > 0.85, (psnr, ssim)
    assert depth_agreement(result.predicted_depth, result.sampled_depth, result.valid)[0] > 0.95
    # the wrong motion (backwards) renders a worse frame
    wrong = reproject(
        frames,
        depth,
        scene.depth[[4]].clamp(max=100),
        truth[None, :3, :3],
        -truth[None, :3, 3],
        kornia_intrinsics(scene.intrinsics),
    )
    assert photometric_agreement(wrong.image, scene.video[[4]], wrong.valid)[0][0] < psnr[0] - 5
