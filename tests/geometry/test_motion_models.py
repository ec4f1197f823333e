"""Model selection between still, turning, travelling and general motion on synthetic matches of known motion."""

import math

import pytest
import torch

from world_r1.geometry.motion_models import MODELS, fit_rotation, fit_translation, gric, select_motion
from world_r1.geometry.pose import intrinsics_from_fov

K = intrinsics_from_fov(60.0, 144, 256).double()


def _yaw(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=torch.float64)


def _matches(rotation, translation, count=200, noise_px=0.3, outliers=0.0, seed=0):
    """Pixels of random scene points (depth 3-12) in a camera at the origin and one at ``X_b = R X_a + t``."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(count, 2, generator=generator, dtype=torch.float64) * torch.tensor([256.0, 144.0])
    depth = 3 + 9 * torch.rand(count, 1, generator=generator, dtype=torch.float64)
    rays = torch.cat([pixels, torch.ones(count, 1, dtype=torch.float64)], 1) @ torch.linalg.inv(K).T
    points_b_3d = (rays * depth) @ rotation.T + translation
    projected = points_b_3d @ K.T
    points_b = projected[:, :2] / projected[:, 2:]
    points_b = points_b + noise_px * torch.randn(points_b.shape, generator=generator, dtype=torch.float64)
    bad = torch.rand(count, generator=generator) < outliers
    points_b[bad] = torch.rand(int(bad.sum()), 2, generator=generator, dtype=torch.float64) * torch.tensor([256.0, 144])
    return pixels, points_b


def _fundamental(rotation, translation):
    t = translation
    cross = torch.tensor([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]], dtype=torch.float64)
    inverse = torch.linalg.inv(K)
    return inverse.T @ cross @ rotation @ inverse


def _angle_deg(a, b):
    cos = ((a @ b.T).trace() - 1) / 2
    return math.degrees(math.acos(max(-1.0, min(1.0, float(cos)))))


@pytest.mark.parametrize(
    ("rotation", "translation", "kind"),
    [
        (torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), "still"),
        (_yaw(3.0), torch.zeros(3, dtype=torch.float64), "rotation"),
        (torch.eye(3, dtype=torch.float64), torch.tensor([0.4, 0.0, 0.0], dtype=torch.float64), "translation"),
        (torch.eye(3, dtype=torch.float64), torch.tensor([0.0, 0.0, -0.8], dtype=torch.float64), "translation"),
        (_yaw(-4.0), torch.tensor([0.5, 0.0, 0.1], dtype=torch.float64), "general"),
    ],
    ids=["still", "pan", "sideways", "push-in", "orbit"],
)
@pytest.mark.parametrize("outliers", [0.0, 0.2])
def test_the_simplest_model_that_explains_the_matches_is_chosen(rotation, translation, kind, outliers):
    points_a, points_b = _matches(rotation, translation, outliers=outliers)
    fundamental = _fundamental(rotation, translation) if translation.norm() > 0 else None
    generator = torch.Generator().manual_seed(0)
    motion = select_motion(points_a, points_b, fundamental, K, threshold_px=1.0, generator=generator)
    assert motion is not None and motion.kind == kind, motion.gric if motion else None
    assert _angle_deg(motion.rotation, rotation) < 0.3
    if kind in ("translation", "general"):
        direction = translation / translation.norm()
        assert float(motion.translation @ direction) > math.cos(math.radians(3))  # right way, sign included
    else:
        assert float(motion.translation.norm()) == 0.0
    assert float(motion.inliers.double().mean()) > 0.7 * (1 - outliers)


def test_a_turn_is_recovered_by_the_rotation_fit_and_a_travel_by_the_translation_fit():
    points_a, points_b = _matches(_yaw(2.0), torch.zeros(3, dtype=torch.float64), noise_px=0.0)
    rotation, errors = fit_rotation(points_a, points_b, K, 1.0)
    assert _angle_deg(rotation, _yaw(2.0)) < 1e-4 and float(errors.max()) < 1e-6
    points_a, points_b = _matches(torch.eye(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 0.5]), noise_px=0.0)
    translation, errors = fit_translation(points_a, points_b, K, 1.0)
    assert float(translation[2]) == pytest.approx(1.0, abs=1e-6) and float(errors.max()) < 1e-6


def test_gric_is_the_formula_worked_by_hand():
    errors = torch.tensor([0.0, 1.0, 10.0], dtype=torch.float64)
    # rotation: d 2, k 3, sigma 0.5: residuals 0, 4, capped at 2 (4 - 2) = 4
    expected = (0 + 4 + 4) + math.log(4) * 2 * 3 + math.log(12) * 3
    assert gric(errors, 0.5, "rotation") == pytest.approx(expected)
    # general: d 3, k 7: residuals capped at 2
    expected = (0 + 2 + 2) + math.log(4) * 3 * 3 + math.log(12) * 7
    assert gric(errors, 0.5, "general") == pytest.approx(expected)
    assert set(MODELS) == {"still", "rotation", "translation", "general"}


def test_too_few_matches_choose_nothing():
    points = torch.rand(7, 2, dtype=torch.float64) * 100
    assert select_motion(points, points, None, K) is None
