"""The torch Gaussian rasteriser against hand-made scenes and a dense brute-force reference: a Gaussian lands on the
pixel its mean projects to with the EWA footprint, rotations turn the footprint, the front Gaussian hides the back one
whatever the input order, colours composite as sum c_i a_i T_i with the background behind, a pixel stops where its
transmittance would fall to 1e-4 (gsplat's rule), spherical harmonics give view-dependent colour."""

import math

import pytest
import torch

from world_r1.reconstruction.gaussians import _SH_C0, _SH_C1, Gaussians, render_gaussians

F_PX = 100.0


def camera(height: int, width: int, cx: float | None = None, cy: float | None = None) -> tuple[torch.Tensor, ...]:
    K = torch.tensor(
        [[F_PX, 0, width / 2 if cx is None else cx], [0, F_PX, height / 2 if cy is None else cy], [0, 0, 1]]
    )
    return torch.eye(4)[None], K[None]


def splats(means, scales, opacities, colors, rotations=None) -> Gaussians:
    """Gaussians with constant colours (degree-0 harmonics chosen so that SH_C0 * h + 0.5 = colour)."""
    means = torch.as_tensor(means, dtype=torch.float32).reshape(-1, 3)
    n = len(means)
    scales = torch.as_tensor(scales, dtype=torch.float32).expand(n, 3).clone()
    rotations = torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4) if rotations is None else torch.as_tensor(rotations)
    harmonics = ((torch.as_tensor(colors, dtype=torch.float32).reshape(n, 3) - 0.5) / _SH_C0)[:, None, :]
    return Gaussians(means, scales, rotations.float(), torch.as_tensor(opacities, dtype=torch.float32), harmonics)


def test_one_gaussian_lands_on_its_pixel_with_the_ewa_footprint():
    # mean at x/z = 0.25 off axis: pixel centre (cx + 25, cy) = (40.5, 20.5) -> row 20, column 40
    height, width, s, z = 41, 64, 0.01, 2.0
    viewmat, K = camera(height, width, cx=15.5, cy=20.5)
    render = render_gaussians(splats([[0.5, 0.0, z]], s, [0.8], [[1.0, 0.5, 0.25]]), viewmat, K, height, width)
    alpha = render.alphas[0, 0]
    assert divmod(int(alpha.argmax()), width) == (20, 40)
    assert alpha[20, 40] == pytest.approx(0.8, abs=1e-6)
    # EWA: Sigma_2d = s^2 J J^T + 0.3; off axis J couples depth into x: var_x = s^2 f^2 (1 + (x/z)^2) / z^2 + 0.3
    var_x = s**2 * F_PX**2 * (1 + 0.25**2) / z**2 + 0.3
    var_y = s**2 * F_PX**2 / z**2 + 0.3
    for dx in (1, 2):
        assert alpha[20, 40 + dx] == pytest.approx(0.8 * math.exp(-0.5 * dx**2 / var_x), rel=1e-4)
        assert alpha[20 + dx, 40] == pytest.approx(0.8 * math.exp(-0.5 * dx**2 / var_y), rel=1e-4)
    assert torch.allclose(render.colors[0, :, 20, 40], torch.tensor([1.0, 0.5, 0.25]) * 0.8, atol=1e-5)


def test_a_rotation_turns_the_footprint():
    height = width = 48
    viewmat, K = camera(height, width, cx=24.5, cy=24.5)
    scales = torch.tensor([0.1, 0.01, 0.01])
    flat = render_gaussians(splats([[0, 0, 2.0]], scales, [0.9], [[1, 1, 1]]), viewmat, K, height, width).alphas[0, 0]
    quarter = [[math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)]]  # 90 degrees about the optical axis
    turned = render_gaussians(splats([[0, 0, 2.0]], scales, [0.9], [[1, 1, 1]], quarter), viewmat, K, height, width)
    turned = turned.alphas[0, 0]
    assert flat[24, 28] > 0.5 and flat[28, 24] < 0.05  # long along the image's x
    assert turned[28, 24] > 0.5 and turned[24, 28] < 0.05  # long along y once turned
    assert torch.allclose(turned, flat.T, atol=1e-5)


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_the_front_gaussian_hides_the_back_one_whatever_the_input_order(order):
    height = width = 32
    viewmat, K = camera(height, width, cx=16.5, cy=16.5)
    means = torch.tensor([[0, 0, 2.0], [0, 0, 4.0]])[order]
    colors = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])[order]
    render = render_gaussians(splats(means, 0.05, [0.9, 0.9], colors), viewmat, K, height, width)
    red, _, blue = render.colors[0, :, 16, 16].tolist()
    assert red == pytest.approx(0.9, abs=1e-5) and blue == pytest.approx(0.9 * 0.1, abs=1e-5)


def test_colours_composite_front_to_back_over_the_background():
    height = width = 16
    viewmat, K = camera(height, width, cx=8.5, cy=8.5)  # both means project to the centre of pixel (8, 8)
    c1, c2, background = torch.tensor([0.9, 0.2, 0.1]), torch.tensor([0.1, 0.7, 0.3]), torch.tensor([0.2, 0.4, 0.6])
    a1, a2 = 0.6, 0.5
    scene = splats([[0, 0, 5.0], [0, 0, 3.0]], 0.05, [a2, a1], torch.stack([c2, c1]))  # given back first
    render = render_gaussians(scene, viewmat, K, height, width, background=background)
    expected = c1 * a1 + c2 * a2 * (1 - a1) + background * (1 - a1) * (1 - a2)
    assert torch.allclose(render.colors[0, :, 8, 8], expected, atol=1e-5)
    assert render.alphas[0, 0, 8, 8] == pytest.approx(1 - (1 - a1) * (1 - a2), abs=1e-6)


def test_a_pixel_stops_before_its_transmittance_falls_to_1e_4():
    # after the first 0.999-opaque Gaussian T = 1e-3; the second would bring it to 1e-6, so gsplat stops: not drawn
    height = width = 16
    viewmat, K = camera(height, width, cx=8.5, cy=8.5)
    scene = splats([[0, 0, 2.0], [0, 0, 3.0], [0, 0, 4.0]], 0.05, [0.999] * 3, [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    color = render_gaussians(scene, viewmat, K, height, width).colors[0, :, 8, 8]
    assert torch.allclose(color, torch.tensor([0.999, 0.0, 0.0]), atol=1e-6)


def test_gaussians_behind_the_camera_or_off_screen_draw_nothing():
    height = width = 16
    viewmat, K = camera(height, width)
    scene = splats([[0, 0, -2.0], [0, 0, 0.005], [50.0, 0, 1.0]], 0.05, [0.9] * 3, [[1, 1, 1]] * 3)
    render = render_gaussians(scene, viewmat, K, height, width)
    assert render.alphas.abs().max() == 0 and render.colors.abs().max() == 0


def test_degree_one_harmonics_colour_by_viewing_direction():
    height = width = 16
    viewmat, K = camera(height, width, cx=8.5, cy=8.5)
    harmonics = torch.zeros(1, 4, 3)
    harmonics[0, 2] = torch.tensor([0.5, -0.5, 0.0])  # the z coefficient: seen straight along +z
    scene = Gaussians(torch.tensor([[0, 0, 2.0]]), torch.full((1, 3), 0.05), torch.tensor([[1.0, 0, 0, 0]]),
                      torch.tensor([0.99]), harmonics)  # fmt: skip
    color = render_gaussians(scene, viewmat, K, height, width).colors[0, :, 8, 8]
    expected = (torch.tensor([0.5, -0.5, 0.0]) * _SH_C1 + 0.5).clamp_min(0) * 0.99
    assert torch.allclose(color, expected, atol=1e-5)


def dense_reference(scene: Gaussians, K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Every pixel against every Gaussian, identity camera, isotropic Gaussians, degree-0 colours, gsplat's rules."""
    x, y, z = scene.means.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    u, v = fx * x / z + cx, fy * y / z + cy
    s2 = scene.scales[:, 0] ** 2
    a = s2 * (fx**2 / z**2 + (fx * x / z**2) ** 2) + 0.3
    b = s2 * (fx * fy * x * y / z**4)
    c = s2 * (fy**2 / z**2 + (fy * y / z**2) ** 2) + 0.3
    det = a * c - b * b
    colors = scene.harmonics[:, 0] * _SH_C0 + 0.5
    image = torch.zeros(3, height, width)
    for row in range(height):
        for col in range(width):
            dx, dy = col + 0.5 - u, row + 0.5 - v
            sigma = 0.5 * (c * dx**2 + a * dy**2 - 2 * b * dx * dy) / det
            alpha = (scene.opacities * torch.exp(-sigma)).clamp_max(0.999)
            T = 1.0
            for i in torch.argsort(z).tolist():
                if alpha[i] < 1 / 255:
                    continue
                if T * (1 - float(alpha[i])) <= 1e-4:
                    break
                image[:, row, col] += colors[i] * float(alpha[i]) * T
                T *= 1 - float(alpha[i])
    return image


def test_matches_a_dense_reference_across_tiles_on_a_random_scene():
    height, width = 23, 37  # not multiples of the 16 px tile
    generator = torch.Generator().manual_seed(0)
    n = 80
    means = torch.rand(n, 3, generator=generator) * torch.tensor([1.2, 0.8, 2.0]) + torch.tensor([-0.6, -0.4, 1.5])
    scales = torch.rand(n, 1, generator=generator) * 0.1 + 0.05
    opacities = torch.rand(n, generator=generator) * 0.5 + 0.499
    scene = splats(means, scales, opacities, torch.rand(n, 3, generator=generator))
    _, K = camera(height, width, cx=18.0, cy=11.0)
    K = K.clone()
    K[0, 0, 0] = K[0, 1, 1] = 40.0
    render = render_gaussians(scene, torch.eye(4)[None], K, height, width)
    reference = dense_reference(scene, K[0], height, width)
    assert render.alphas.mean() > 0.5  # overlapping splats (up to 80 a tile, several blocks): order and stopping matter
    assert (render.colors[0] - reference).abs().max() < 1e-5


def test_camera_motion_moves_the_image():
    height = width = 32
    scene = splats([[0, 0, 2.0]], 0.02, [0.9], [[1, 1, 1]])
    _, K = camera(height, width, cx=16.5, cy=16.5)
    moved = torch.eye(4)
    moved[0, 3] = 0.1  # world-to-camera: the point is 0.1 to the right in the camera -> 5 px right
    render = render_gaussians(scene, torch.stack([torch.eye(4), moved]), K.expand(2, 3, 3), height, width)
    assert divmod(int(render.alphas[0, 0].argmax()), width) == (16, 16)
    assert divmod(int(render.alphas[1, 0].argmax()), width) == (16, 21)


def test_bad_shapes_and_backends_raise():
    scene = splats([[0, 0, 2.0]], 0.02, [0.9], [[1, 1, 1]])
    viewmat, K = camera(8, 8)
    with pytest.raises(ValueError, match="viewmats"):
        render_gaussians(scene, viewmat[0], K, 8, 8)
    with pytest.raises(ValueError, match="backend"):
        render_gaussians(scene, viewmat, K, 8, 8, backend="vulkan")
    with pytest.raises(ValueError, match="harmonics"):
        Gaussians(scene.means, scene.scales, scene.rotations, scene.opacities, torch.zeros(1, 5, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat rasterises on CUDA only")
def test_torch_path_matches_gsplat():
    pytest.importorskip("gsplat")
    generator = torch.Generator().manual_seed(1)
    n = 2000
    means = torch.randn(n, 3, generator=generator) * 0.5 + torch.tensor([0, 0, 3.0])
    quats = torch.randn(n, 4, generator=generator)
    scene = Gaussians(means, torch.rand(n, 3, generator=generator) * 0.05, quats, torch.rand(n, generator=generator),
                      torch.randn(n, 9, 3, generator=generator) * 0.3)  # fmt: skip
    _, K = camera(64, 96)
    ours = render_gaussians(scene, torch.eye(4)[None], K, 64, 96, backend="torch")
    theirs = render_gaussians(scene.to("cuda"), torch.eye(4)[None].cuda(), K.cuda(), 64, 96, backend="gsplat")
    assert (ours.colors - theirs.colors.cpu()).abs().max() < 1e-3
