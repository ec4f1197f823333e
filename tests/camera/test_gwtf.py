"""World-R1's Go-with-the-Flow warp: its flow over a plane, one warp step's exact cases, white Gaussian output that
moves with the camera, "fixed" frozen, and the degradation blend."""

import math

import pytest
import torch

from tests.camera.test_warp import white_gaussian_violations
from world_r1.camera import camera_to_world, camera_trajectory, gwtf_noise, parse_camera, plane_flow
from world_r1.camera.gwtf import bin_noise, warp_step

C, T, H, W, TF = 8, 5, 12, 16, 4  # latent noise of a 17-frame video (warped at 16x: 192 x 256)


def warped(camera: str, seed: int = 0, **kwargs) -> torch.Tensor:
    poses = camera_to_world(camera_trajectory(parse_camera(camera), (T - 1) * TF + 1))
    return gwtf_noise(poses, (C, T, H, W), TF, generator=torch.Generator().manual_seed(seed), **kwargs)


def best_shift(a: torch.Tensor, b: torch.Tensor, axis: int) -> int:
    """The shift of ``a`` (C, h, w) along ``axis`` (-1: x, -2: y) that best matches ``b``, in [-3, 3] pixels."""
    inner = (slice(None), slice(3, -3), slice(3, -3))
    scores = {d: float((torch.roll(a, d, dims=axis)[inner] * b[inner]).mean()) for d in range(-3, 4)}
    return max(scores, key=scores.get)


def test_plane_flow_of_a_pan_a_push_and_its_clamp():
    eye = torch.eye(4, dtype=torch.float64)
    turn = camera_to_world(camera_trajectory(parse_camera("pan right"), 2))[1]
    flow = plane_flow(eye, turn, 256, 256, focal=100.0, max_share=10.0)
    # turning right by 14 degrees moves the centre of the view left by f tan(14 deg)
    assert float(flow[0, 128, 128]) == pytest.approx(-100 * math.tan(math.radians(14)), rel=1e-4)
    push = eye.clone()
    push[2, 3] = 200.0  # 200 units toward the plane 1000 ahead: everything grows by 1000 / 800
    flow = plane_flow(eye, push, 64, 64, focal=100.0)
    assert float(flow[0, 32, 0]) == pytest.approx(-32 * 0.25, rel=1e-4) and float(flow[0, 32, 32]) == 0.0
    push[2, 3] = 900.0  # 10x: the longest vector is scaled down to a quarter of the side
    assert float(plane_flow(eye, push, 64, 64, focal=100.0).norm(dim=0).max()) == pytest.approx(16.0, rel=1e-4)


def test_a_whole_pixel_shift_moves_the_noise_unchanged_inside_the_frame():
    noise = torch.randn(C, 20, 30, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(2, 20, 30)
    flow[0] = 3.0  # 3 pixels right
    weight, out = warp_step(torch.ones(20, 30), noise, flow, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out[:, :, 3:27], noise[:, :, :24], rtol=0, atol=1e-6)
    assert white_gaussian_violations(out) == []  # the uncovered strip is fresh
    weight, out = warp_step(torch.ones(20, 30), noise, torch.zeros(2, 20, 30), torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, noise, rtol=0, atol=1e-6)  # no flow: nothing moves
    torch.testing.assert_close(weight, torch.ones(20, 30), rtol=0, atol=1e-4)


def test_binning_is_variance_preserving():
    noise = torch.randn(C, 16 * H, 16 * W, generator=torch.Generator().manual_seed(0))
    binned = bin_noise(noise, 16)
    assert binned.shape == (C, H, W) and white_gaussian_violations(binned) == []


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
@pytest.mark.parametrize("camera", ["pan left", "push in", "orbit left", "move right, pull out, then pan left"])
def test_every_latent_frame_is_white_standard_gaussian(camera):
    out = warped(camera)
    assert out.shape == (C, T, H, W)
    for k in range(T):
        assert white_gaussian_violations(out[:, k]) == [], (camera, k)


@pytest.mark.parametrize(
    ("camera", "axis", "shift"), [("pan left", -1, 1), ("pan right", -1, -1), ("move left", -1, 1)]
)
@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_the_noise_moves_with_the_camera(camera, axis, shift):
    out = warped(camera, degradation=0.0)
    # a pan of 14 degrees over 16 frames at focal 1.2 x width: 0.8 latent pixels per latent frame
    assert [best_shift(out[:, k], out[:, k + 1], axis) for k in range(T - 1)] == [shift] * (T - 1)


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_fixed_freezes_the_noise_and_degradation_blends_fresh_noise_in():
    d = 0.35
    frozen = warped("fixed")
    expected = (1 - d) ** 2 / (d**2 + (1 - d) ** 2)  # correlation of two frames sharing the warped part
    for k in range(T - 1):
        assert float((frozen[:, k] * frozen[:, k + 1]).mean()) == pytest.approx(expected, abs=0.03)
    pure = warped("fixed", degradation=0.0)
    torch.testing.assert_close(pure[:, 1:], pure[:, :1].expand(-1, T - 1, -1, -1), rtol=0, atol=1e-5)


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_deterministic_per_seed_and_checked():
    torch.testing.assert_close(warped("pan left", seed=3), warped("pan left", seed=3), rtol=0, atol=0)
    assert not torch.equal(warped("pan left", seed=3), warped("pan right", seed=3))
    with pytest.raises(ValueError, match="one per video frame"):
        gwtf_noise(torch.eye(4).expand(5, 4, 4), (C, T, H, W), TF)
    with pytest.raises(ValueError, match="degradation"):
        warped("pan left", degradation=1.5)
