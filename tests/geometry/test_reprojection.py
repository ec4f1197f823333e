"""The reprojection baselines: the change a re-rendering explains against copying the source frame, the homography
prediction that explains a rotating camera, and the pair averaging that gives frozen pairs no credit."""

import math

import pytest
import torch
from kornia.geometry.transform import warp_perspective

from world_r1.geometry.reprojection import explained_error, homography_prediction
from world_r1.rewards.epipolar import motion_weighted_mean
from world_r1.synthetic.photos import load_photo


@pytest.fixture(scope="module")
def frames() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A photograph, the same shifted by a rotation-like homography, and that homography (1, 3, 3)."""
    image = torch.nn.functional.interpolate(load_photo("coffee")[None], size=(96, 128), mode="area")
    angle = math.radians(3)
    homography = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 6.0], [math.sin(angle), math.cos(angle), -3.0], [2e-5, 1e-5, 1.0]]
    )[None]
    return image, warp_perspective(image, homography, (96, 128), align_corners=True), homography


def test_explained_error_is_one_for_a_perfect_rendering_and_zero_for_a_copy(frames):
    source, target, _ = frames
    valid = torch.ones_like(target[:, :1], dtype=torch.bool)
    assert explained_error(target, source, target, valid).item() == pytest.approx(1.0)
    assert explained_error(source, source, target, valid).item() == pytest.approx(0.0)
    halfway = 0.5 * (source + target)  # a rendering that gets the change half right
    assert 0.6 < explained_error(halfway, source, target, valid).item() < 0.9
    # frozen frames: nothing changed, so nothing can be explained
    assert explained_error(source, source, source, valid).item() == 0.0


def test_blur_does_not_buy_explained_change(frames):
    """Blurring every frame lowers the re-rendering's and the copy's errors alike."""
    source, target, _ = frames
    valid = torch.ones_like(target[:, :1], dtype=torch.bool)
    noisy = target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    sharp = explained_error(noisy, source, target, valid).item()
    blur = torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    blurred = explained_error(blur(noisy), blur(source), blur(target), valid).item()
    assert abs(sharp - blurred) < 0.1, (sharp, blurred)


def test_homography_prediction_recovers_a_rotating_camera(frames):
    source, target, homography = frames
    ys, xs = torch.meshgrid(torch.linspace(10, 85, 12), torch.linspace(10, 117, 16), indexing="ij")
    points = torch.stack([xs.flatten(), ys.flatten(), torch.ones(xs.numel())], -1)
    mapped = points @ homography[0].T
    mapped = mapped[:, :2] / mapped[:, 2:]
    outliers = torch.rand(20, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([128.0, 96.0])
    first = torch.cat([points[:, :2], outliers])
    second = torch.cat([mapped, outliers.flip(0)])  # a tenth of the matches are wrong
    predicted, valid = homography_prediction(source, [first], [second])
    assert valid.float().mean() > 0.8
    assert explained_error(predicted, source, target, valid).item() > 0.95
    _, empty = homography_prediction(source, [first[:3]], [second[:3]])  # too few matches: no prediction
    assert not empty.any()


def test_motion_weighted_mean_gives_frozen_pairs_no_credit():
    consistency = torch.tensor([[0.9, 1.0, 1.0], [0.9, 0.9, 0.9], [1.0, 1.0, 1.0], [0.9, 0.9, 0.9]])
    parallax = torch.tensor([[4.0, 0.0, 0.0], [4.0, 1.0, 8.0], [0.0, 0.0, 0.0], [4.0, 4.0, 4.0]])
    valid = torch.tensor([[True, True, True], [True, True, True], [True, True, True], [True, True, False]])
    score = motion_weighted_mean(consistency, parallax, valid, min_parallax_px=2.0)
    assert score[0].item() == pytest.approx(0.9)  # the two frozen pairs' perfect values neither count nor dilute
    assert score[1].item() == pytest.approx(0.9)  # a slow pair weighs less, the value stays
    assert score[2].item() == 0.0  # a frozen video earns nothing
    assert score[3].item() == pytest.approx(0.6)  # an invalid pair counts fully as a failure
