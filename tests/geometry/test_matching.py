"""Keypoints and matches: in the frame's own pixels whatever the detector's speed settings, and the fast distance
form picks the matches Kornia's exact one does."""

import pytest
import torch
from kornia.feature import match_smnn_batched

from tests.helpers import textured_frame
from world_r1.geometry import Features, GeometrySettings, SIFTDetector, analyse, match_pairs
from world_r1.synthetic import rigid_video


def _correct_share(detector: SIFTDetector, frame: torch.Tensor, moved: torch.Tensor, where) -> tuple[int, float]:
    """Matches between ``frame`` and ``moved`` and the share of them within 0.5 px of ``where(points1)``."""
    matches = match_pairs(detector(torch.cat([frame, moved])), torch.tensor([0]), torch.tensor([1]))
    error = (matches.points2 - where(matches.points1)).norm(dim=1)
    return len(error), float((error < 0.5).float().mean()) if len(error) else 0.0


@pytest.mark.parametrize("upsample", [True, False])
@pytest.mark.parametrize("upright", [True, False])
def test_keypoints_are_in_the_frames_pixels_in_every_mode(upsample, upright):
    frame = textured_frame()
    moved = torch.roll(frame, shifts=(3, 5), dims=(2, 3))  # 5 px right, 3 px down
    shift = torch.tensor([5.0, 3.0])
    count, correct = _correct_share(SIFTDetector(256, upsample, upright), frame, moved, lambda p: p + shift)
    assert count >= 40 and correct > 0.8  # the rest are where the roll wraps the frame around


def test_the_native_resolution_pyramid_finds_fewer_but_enough_keypoints():
    frame = textured_frame()
    doubled, native = SIFTDetector(512, upsample=True)(frame), SIFTDetector(512, upsample=False)(frame)
    assert native.mask.sum() < doubled.mask.sum()  # the finest octave (of the doubled frame) is gone
    assert native.mask.sum() >= 50


def test_upright_descriptors_lose_an_image_rotation_that_oriented_ones_keep():
    frame = textured_frame()
    size = frame.shape[-1]
    turned = torch.rot90(frame, 1, dims=(2, 3))  # (x, y) -> (y, size - 1 - x)

    def where(points: torch.Tensor) -> torch.Tensor:
        return torch.stack([points[:, 1], size - 1 - points[:, 0]], 1)

    oriented_count, oriented = _correct_share(SIFTDetector(256, upright=False), frame, turned, where)
    _, upright = _correct_share(SIFTDetector(256, upright=True), frame, turned, where)
    assert oriented_count >= 40 and oriented > 0.9 and upright < 0.2


def test_matrix_product_distances_pick_kornias_matches():
    generator = torch.Generator().manual_seed(0)
    descriptors = torch.nn.functional.normalize(torch.rand(4, 200, 128, generator=generator), dim=-1)
    # noise growing over the descriptors, so the ratios of the matches reach up to the threshold
    noise = torch.linspace(0, 0.12, 200)[None, :, None] * torch.randn(4, 200, 128, generator=generator)
    noisy = torch.nn.functional.normalize(descriptors + noise, dim=-1)
    both = torch.cat([descriptors, noisy[:, torch.randperm(200, generator=generator)]])
    mask = torch.rand(8, 200, generator=generator) > 0.1
    features = Features(torch.rand(8, 200, 2, generator=generator), both, mask)
    first, second = torch.arange(4), torch.arange(4, 8)
    ours = match_pairs(features, first, second, ratio=0.9)
    ratios, exact = match_smnn_batched(both[first], both[second], th=0.9, mask1=mask[first], mask2=mask[second])
    assert len(exact) > 300 and (ratios > 0.8).sum() >= 20  # many matches decided close to the ratio test's edge
    assert torch.equal(ours.pair, exact[:, 0])
    assert torch.equal(ours.points1, features.keypoints[first[exact[:, 0]], exact[:, 1]])
    assert torch.equal(ours.points2, features.keypoints[second[exact[:, 0]], exact[:, 2]])


def test_fast_settings_still_see_a_rigid_scene_as_rigid():
    videos = torch.stack([rigid_video(9, 128, 128, seed=s).video for s in range(2)])
    settings = GeometrySettings(gaps=(0.5,), max_pairs=2, upsample=False, upright=True)
    analysis = analyse(videos, settings)
    assert analysis.geometry.valid.all() and analysis.geometry.inlier_ratio.min() > 0.8
