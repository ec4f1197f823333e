"""The project's transport warp: every frame stays i.i.d. standard Gaussian (tolerances from the sample size),
consecutive frames are correlated along the camera's flow, and the blend, fallbacks and exact cases behave as
documented. (World-R1's Go-with-the-Flow warp: test_gwtf.py.)"""

import math

import pytest
import torch
import torch.nn.functional as F

from world_r1.camera import (
    CameraConfig,
    MotionScale,
    camera_trajectory,
    forward_flow,
    parse_camera,
    transport_noise,
    upsample_noise,
    warp_noise,
    warped_noise,
    warps,
    zoom_schedule,
    zoomed,
)
from world_r1.geometry import intrinsics_from_fov

C, T, H, W = 16, 5, 24, 40  # latent noise of a 33-frame 192x320 video
SIGMAS = 4.5  # every statistical bound below is this many standard errors wide


def white_gaussian_violations(frame: torch.Tensor) -> list[str]:
    """Reasons ``frame`` (C, h, w) is not i.i.d. N(0, 1), judged with bounds SIGMAS standard errors wide."""
    x = frame.double()
    n = x.numel()
    problems = []
    if abs(float(x.mean())) > SIGMAS / math.sqrt(n):
        problems.append(f"mean {float(x.mean()):.4f}")
    if abs(float(x.std()) - 1) > SIGMAS / math.sqrt(2 * n):
        problems.append(f"std {float(x.std()):.4f}")
    inside = float((x.abs() < 1).double().mean())  # N(0, 1): P(|x| < 1) = 0.6827, a check on the shape
    if abs(inside - 0.6827) > SIGMAS * math.sqrt(0.6827 * 0.3173 / n):
        problems.append(f"P(|x|<1) {inside:.4f}")
    for name, a, b in (
        ("horizontal", x[..., :, 1:], x[..., :, :-1]),
        ("vertical", x[..., 1:, :], x[..., :-1, :]),
        ("diagonal", x[..., 1:, 1:], x[..., :-1, :-1]),
    ):
        correlation = float((a * b).mean())
        if abs(correlation) > SIGMAS / math.sqrt(a.numel()):
            problems.append(f"{name} neighbour correlation {correlation:.4f}")
    return problems


def noise(seed: int = 0) -> torch.Tensor:
    return torch.randn(C, T, H, W, generator=torch.Generator().manual_seed(seed))


#: the transport's camera in the units of its default scene (ground 1 unit below), the classic path
CLASSIC = MotionScale(30.0, 30.0, 1.0, 4.0, 1.5, 1.0, "classic")


def transport(**settings) -> CameraConfig:
    return CameraConfig(enabled=True, warp="transport", injection="initial", motion=CLASSIC, **settings)


def camera_noise(base, prompt, camera, config, generator=None):
    """The transport's noise of one rollout, at the latent frame rate (temporal factor 1), or ``base`` unwarped."""
    if not warps(prompt, camera, config, base.shape[1]):
        return base
    return warped_noise(base, prompt, camera, config, 1, generator)


MOTIONS = [
    "pan right",
    "tilt up quickly",
    "push in quickly",
    "pull back",
    "orbit left",
    "crane up, then truck left",
    "zoom in quickly",
]


@pytest.mark.parametrize("motion", MOTIONS)
@pytest.mark.parametrize("strength", [1.0, 0.35])
def test_every_warped_frame_is_white_standard_gaussian(motion, strength):
    config = transport(strength=strength)
    out = camera_noise(noise(), f"Camera {motion}. A street.", None, config, torch.Generator().manual_seed(1))
    assert out.shape == (C, T, H, W) and out.dtype == torch.float32
    for k in range(T):
        assert white_gaussian_violations(out[:, k]) == [], (motion, k)


def test_the_check_rejects_naive_warps():
    """The statistics above can fail: bilinear warping shrinks the variance, nearest backward warping duplicates."""
    frame = noise()[:, 0]
    shifted = 0.5 * (frame[..., 1:] + frame[..., :-1])  # a bilinear half-pixel shift: variance 1/2
    assert any("std" in p for p in white_gaussian_violations(shifted))
    zoomed = frame[:, H // 4 : 3 * H // 4, W // 4 : 3 * W // 4].repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert any("correlation" in p for p in white_gaussian_violations(zoomed))  # nearest backward warp of a zoom


def correlation_along_flow(previous: torch.Tensor, current: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor):
    """Correlation of ``previous`` (C, h, w) with ``current`` at where each pixel's centre flows to."""
    h, w = previous.shape[-2:]
    column, row = targets[..., 0].floor().long(), targets[..., 1].floor().long()
    keep = valid & (column >= 0) & (column < w) & (row >= 0) & (row < h)
    a = previous[:, keep]
    b = current[:, row[keep], column[keep]]
    return float((a * b).mean()), a.numel()


@pytest.mark.parametrize("motion", ["pan right", "truck left quickly", "push in", "zoom out quickly"])
def test_consecutive_frames_are_correlated_along_the_flow(motion):
    strength = 0.5
    config = transport(strength=strength)
    out = camera_noise(noise(), f"Camera {motion}.", None, config, torch.Generator().manual_seed(1))
    poses = camera_trajectory(parse_camera(motion), T, CLASSIC)
    intrinsics = zoomed(intrinsics_from_fov(config.fov_deg, H, W), zoom_schedule(parse_camera(motion), T, CLASSIC))
    for k in range(T - 1):
        targets, valid = forward_flow(poses[k], poses[k + 1], intrinsics[k], H, W, config.scene, 1, intrinsics[k + 1])
        along, n = correlation_along_flow(out[:, k], out[:, k + 1], targets, valid)
        in_place = float((out[:, k] * out[:, k + 1]).mean())
        # sub-pixel flow spreads a pixel over up to 4 targets: at least half of the strength survives in one
        assert along > 0.5 * strength, (motion, k, along)
        assert along > in_place + SIGMAS / math.sqrt(n), (motion, k, along, in_place)


def test_an_integer_shift_moves_the_noise_unchanged():
    frame = noise()[:, 0]
    s = 4
    v, u = torch.meshgrid((torch.arange(H * s) + 0.5) / s, (torch.arange(W * s) + 0.5) / s, indexing="ij")
    targets = torch.stack([u - 3, v + 2], -1)  # 3 pixels left, 2 down
    out = transport_noise(frame, targets, torch.ones(H * s, W * s, dtype=torch.bool), torch.Generator())
    torch.testing.assert_close(out[:, 2:, : W - 3], frame[:, : H - 2, 3:], rtol=0, atol=1e-5)
    assert white_gaussian_violations(out) == []  # the uncovered border is fresh noise


def test_conditional_upsampling_is_white_and_sums_back():
    frame = noise()[:, 0]
    up = upsample_noise(frame, 4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(F.avg_pool2d(up[None], 4)[0] * 4, frame, rtol=0, atol=1e-5)
    assert white_gaussian_violations(up) == []


def test_strength_zero_static_prompts_and_disabled_config_leave_the_noise_alone():
    base = noise()
    path = camera_trajectory(parse_camera("pan left"), T, CLASSIC)
    assert torch.equal(warp_noise(base, path, transport(strength=0)), base)
    for prompt in ["Camera fixed. A room.", "A room with a piano.", "Camera wobbles. A room."]:
        assert not warps(prompt, None, transport(), T)  # the transport warps moving cameras only
    assert not warps("Camera pan left.", None, CameraConfig(enabled=False), T)
    assert not warps("Camera pan left.", None, transport(), 1)  # one frame: nothing to move
    assert warps("Camera fixed.", "pan left", transport(), T)  # the explicit camera wins


def test_warping_is_deterministic_and_the_override_wins():
    config = transport()
    warp = lambda prompt, camera=None: camera_noise(noise(), prompt, camera, config, torch.Generator().manual_seed(3))  # noqa: E731
    assert torch.equal(warp("Camera pan left."), warp("Camera pan left."))
    assert torch.equal(warp("Camera fixed.", "pan left"), warp("Camera pan left."))
    assert not torch.equal(warp("Camera pan left."), warp("Camera pan right."))
    assert torch.equal(warp("Camera pan left.")[:, 0], noise()[:, 0])  # frame 0 is the plain noise


def test_config_is_checked():
    with pytest.raises(ValueError, match="strength"):
        CameraConfig(strength=1.5)
    with pytest.raises(ValueError, match="supersample"):
        CameraConfig(supersample=0)
    with pytest.raises(ValueError, match=r"camera\.warp"):
        CameraConfig(warp="optical")
    with pytest.raises(ValueError, match=r"camera\.injection"):
        CameraConfig(injection="late")
