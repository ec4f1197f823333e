"""3D Gaussians and their rasterisation: gsplat on CUDA where it is installed, a torch re-implementation elsewhere.

The torch path follows gsplat's ``rasterization`` (the renderer Depth Anything 3 and the World-R1 release use) step by
step: each Gaussian's mean is projected with the pinhole model, its covariance ``R S S^T R^T`` is carried to the
image by the EWA approximation ``J W Sigma W^T J^T`` (``W`` the camera rotation, ``J`` the projection's Jacobian at
the mean) plus gsplat's ``0.3`` px^2 low-pass term, and the image is composited front to back over the Gaussians
sorted by camera depth: ``C = sum_i c_i a_i T_i + T_final * background`` with ``a_i = min(0.999, o_i exp(-d^T
Sigma'^-1 d / 2))`` and ``T_i = prod_{j<i} (1 - a_j)``. gsplat's thresholds are kept: alphas under 1/255 are skipped,
a pixel stops at the Gaussian that would bring its transmittance to 1e-4 or below, Gaussians closer than 0.01 are
culled, and the Jacobian's x/z, y/z are clamped to 1.3 times the field of view.

Simplifications against gsplat: the sort is one global depth sort per view (gsplat sorts per 16 px tile by the same
key, which gives the same order within every tile); no anti-aliased opacity compensation, no packed mode, no
gradients (the reward needs none); colours are evaluated from spherical harmonics of degree <= 3 as gsplat does
(``max(SH(dir) + 0.5, 0)``, ``dir`` from the camera centre to the mean).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import torch

TILE = 16
NEAR = 0.01
EPS2D = 0.3  # gsplat's low-pass filter: every splat is at least ~0.55 px wide
MIN_ALPHA = 1.0 / 255.0
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
BLOCK = 32  # Gaussians per tile composited per step of the torch path

_SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


@dataclass
class Gaussians:
    """N 3D Gaussians in world space.

    Attributes:
        means: (N, 3) centres.
        scales: (N, 3) standard deviations along the Gaussian's own axes (not log-scales).
        rotations: (N, 4) quaternions ``(w, x, y, z)`` from the Gaussian's axes to the world (normalised on use).
        opacities: (N,) in [0, 1].
        harmonics: (N, K, 3) spherical-harmonic colour coefficients per RGB channel, ``K = (degree + 1)^2`` (K = 1: a
            constant colour ``SH_C0 * h + 0.5``).
    """

    means: torch.Tensor
    scales: torch.Tensor
    rotations: torch.Tensor
    opacities: torch.Tensor
    harmonics: torch.Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        shapes = {
            "means": (self.means, (n, 3)),
            "scales": (self.scales, (n, 3)),
            "rotations": (self.rotations, (n, 4)),
            "opacities": (self.opacities, (n,)),
        }
        for name, (value, shape) in shapes.items():
            if tuple(value.shape) != shape:
                raise ValueError(f"Gaussians.{name} must be {shape}, got {tuple(value.shape)}")
        k = self.harmonics.shape[1] if self.harmonics.ndim == 3 else 0
        if self.harmonics.ndim != 3 or self.harmonics.shape[0] != n or self.harmonics.shape[2] != 3 or k > 16:
            raise ValueError(f"Gaussians.harmonics must be (N, K, 3), K <= 16, got {tuple(self.harmonics.shape)}")
        if math.isqrt(k) ** 2 != k:
            raise ValueError(f"Gaussians.harmonics holds {k} coefficients; a degree d needs (d + 1)^2.")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.harmonics.shape[1]) - 1

    def to(self, device: torch.device | str) -> Gaussians:
        return Gaussians(
            *(getattr(self, f).to(device) for f in ("means", "scales", "rotations", "opacities", "harmonics"))
        )


@dataclass
class Render:
    """Rendered views: ``colors`` (V, 3, H, W) and accumulated opacity ``alphas`` (V, 1, H, W), both in [0, 1]
    (colours are not clamped above by the rasteriser; SH colours can exceed 1)."""

    colors: torch.Tensor
    alphas: torch.Tensor


def quaternion_to_matrix(quats: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions ``(w, x, y, z)`` (any norm) -> (N, 3, 3) rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)  # fmt: skip


def sh_to_color(harmonics: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Colours (N, 3) of SH coefficients (N, K, 3) seen along ``directions`` (N, 3) (any length), as gsplat:
    ``max(sum_k Y_k(dir) h_k + 0.5, 0)`` with the real SH basis of 3D Gaussian Splatting (degree <= 3)."""
    k = harmonics.shape[1]
    x, y, z = torch.nn.functional.normalize(directions, dim=-1).unbind(-1)
    basis = [torch.full_like(x, _SH_C0)]
    if k > 1:
        basis += [-_SH_C1 * y, _SH_C1 * z, -_SH_C1 * x]
    if k > 4:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        c = _SH_C2
        basis += [c[0] * xy, c[1] * yz, c[2] * (2 * zz - xx - yy), c[3] * xz, c[4] * (xx - yy)]
    if k > 9:
        c = _SH_C3
        basis += [
            c[0] * y * (3 * xx - yy),
            c[1] * xy * z,
            c[2] * y * (4 * zz - xx - yy),
            c[3] * z * (2 * zz - 3 * xx - 3 * yy),
            c[4] * x * (4 * zz - xx - yy),
            c[5] * z * (xx - yy),
            c[6] * x * (xx - 3 * yy),
        ]
    values = torch.stack(basis, dim=-1)  # (N, K)
    return ((values[..., None] * harmonics).sum(1) + 0.5).clamp_min(0)


def project(
    gaussians: Gaussians, viewmat: torch.Tensor, K: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, ...]:
    """Per Gaussian in one view: ``keep`` (N,) bool, ``means2d`` (N, 2) px, ``conics`` (N, 3) (the inverse 2D
    covariance's ``a, b, c`` of ``[[a, b], [b, c]]``), ``radii`` (N,) px (3 sigma), ``depths`` (N,), ``colors``
    (N, 3). ``viewmat`` (4, 4) world-to-camera (OpenCV axes: x right, y down, z forward); ``K`` (3, 3) in pixels."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    means_c = gaussians.means @ R.T + t
    x, y, z = means_c.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    keep = z > NEAR
    z_safe = torch.where(keep, z, torch.ones_like(z))

    axes = quaternion_to_matrix(gaussians.rotations) * gaussians.scales[:, None, :]
    cov_c = R @ (axes @ axes.transpose(1, 2)) @ R.T
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * width / fx, cx / fx + 0.3 * width / fx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * height / fy, cy / fy + 0.3 * height / fy
    tx = z_safe * (x / z_safe).clamp(-lim_x_neg, lim_x_pos)
    ty = z_safe * (y / z_safe).clamp(-lim_y_neg, lim_y_pos)
    zeros = torch.zeros_like(z)
    J = torch.stack(
        [fx / z_safe, zeros, -fx * tx / z_safe**2, zeros, fy / z_safe, -fy * ty / z_safe**2], dim=-1
    ).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(1, 2)
    a, b, c = cov2d[:, 0, 0] + EPS2D, cov2d[:, 0, 1], cov2d[:, 1, 1] + EPS2D
    det = a * c - b * b
    keep = keep & (det > 0)
    det_safe = torch.where(keep, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    mid = 0.5 * (a + c)
    radii = torch.ceil(3.0 * torch.sqrt(mid + torch.sqrt((mid * mid - det).clamp_min(0.1))))
    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], dim=-1)
    keep = keep & (means2d[:, 0] + radii > 0) & (means2d[:, 0] - radii < width)
    keep = keep & (means2d[:, 1] + radii > 0) & (means2d[:, 1] - radii < height)
    keep = keep & (radii > 0) & (gaussians.opacities >= MIN_ALPHA)
    camera_centre = -R.T @ t
    colors = sh_to_color(gaussians.harmonics, gaussians.means - camera_centre)
    return keep, means2d, conics, radii, z, colors


def _rasterize_torch(
    gaussians: Gaussians, viewmat: torch.Tensor, K: torch.Tensor, height: int, width: int, background: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One view (3, H, W), (1, H, W) by the tile-binned, depth-sorted compositing of the module docstring.

    Every 16 x 16 tile lists the Gaussians whose 3-sigma square touches it, front to back; all tiles advance together
    through their lists ``BLOCK`` Gaussians at a time, carrying each pixel's transmittance, and a tile leaves once
    its list ends or all its pixels have stopped (what makes dense, opaque scenes cheap, as in gsplat).
    """
    device = gaussians.means.device
    keep, means2d, conics, radii, depths, colors = project(gaussians, viewmat, K, height, width)
    index = keep.nonzero().squeeze(1)
    index = index[torch.argsort(depths[index], stable=True)]  # front to back
    tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
    image = torch.zeros(tiles_y * tiles_x, TILE, TILE, 3, device=device)
    transmittance = torch.ones(tiles_y * tiles_x, TILE, TILE, device=device)
    if len(index):
        mean, radius = means2d[index], radii[index]
        x0 = ((mean[:, 0] - radius) / TILE).floor().clamp(0, tiles_x - 1).long()
        x1 = ((mean[:, 0] + radius) / TILE).floor().clamp(0, tiles_x - 1).long()
        y0 = ((mean[:, 1] - radius) / TILE).floor().clamp(0, tiles_y - 1).long()
        y1 = ((mean[:, 1] + radius) / TILE).floor().clamp(0, tiles_y - 1).long()
        span_x = x1 - x0 + 1
        counts = span_x * (y1 - y0 + 1)
        rank = torch.repeat_interleave(torch.arange(len(index), device=device), counts)  # depth rank of each pair
        offset = torch.arange(len(rank), device=device) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        tile = (y0[rank] + offset // span_x[rank]) * tiles_x + x0[rank] + offset % span_x[rank]
        order = torch.argsort(tile * len(index) + rank)  # by tile, then by depth
        listed = index[rank[order]]  # Gaussian ids, grouped by tile, front to back within each
        per_tile = torch.bincount(tile[order], minlength=tiles_x * tiles_y)
        starts = per_tile.cumsum(0) - per_tile
        centre = torch.arange(TILE, device=device, dtype=torch.float32) + 0.5  # pixel centres within a tile
        active = (per_tile > 0).nonzero().squeeze(1)
        done = torch.zeros(len(active), TILE, TILE, dtype=torch.bool, device=device)
        slot = torch.arange(BLOCK, device=device)
        first = 0
        while len(active):
            slots = first + slot
            valid = slots[None] < per_tile[active][:, None]  # (G, B)
            g = listed[(starts[active][:, None] + slots[None]).clamp_max(len(listed) - 1)]
            # pixel offsets from each mean, separable over the tile's columns (x) and rows (y)
            ox = (active % tiles_x * TILE).float()[:, None, None] + centre - means2d[g][..., 0, None]  # (G, B, T)
            oy = (active // tiles_x * TILE).float()[:, None, None] + centre - means2d[g][..., 1, None]
            con = conics[g]
            along_x, along_y = 0.5 * con[..., 0, None] * ox * ox, 0.5 * con[..., 2, None] * oy * oy
            sigma = along_y[..., :, None] + along_x[..., None, :]  # (G, B, T rows, T columns)
            sigma = sigma + (con[..., 1, None] * oy)[..., :, None] * ox[..., None, :]
            alpha = (gaussians.opacities[g][..., None, None] * torch.exp(-sigma)).clamp_max(MAX_ALPHA)
            alpha = torch.where(valid[..., None, None] & (alpha >= MIN_ALPHA), alpha, 0.0)
            carried = transmittance[active]
            after = torch.cumprod(1 - alpha, dim=1) * carried[:, None]  # transmittance after each Gaussian
            include = (after > MIN_TRANSMITTANCE) & ~done[:, None]  # a pixel stops at the first failing Gaussian
            before = torch.cat([carried[:, None], after[:, :-1]], dim=1)
            weight = torch.where(include, alpha * before, 0.0)
            image[active] += torch.einsum("gbyx,gbc->gyxc", weight, colors[g])
            transmittance[active] = carried * torch.where(include, 1 - alpha, 1.0).prod(1)
            done = done | (after <= MIN_TRANSMITTANCE).any(1)
            first += BLOCK
            alive = (per_tile[active] > first) & ~done.flatten(1).all(1)
            active, done = active[alive], done[alive]
    image = image + transmittance[..., None] * background
    image = image.reshape(tiles_y, tiles_x, TILE, TILE, 3).permute(4, 0, 2, 1, 3).reshape(3, tiles_y * TILE, -1)
    alphas = (1 - transmittance).reshape(tiles_y, tiles_x, TILE, TILE).permute(0, 2, 1, 3)
    alphas = alphas.reshape(1, tiles_y * TILE, -1)
    return image[:, :height, :width], alphas[:, :height, :width]


def gsplat_available(device: torch.device) -> bool:
    """gsplat rasterises where the tensors are on CUDA and the package is installed."""
    return device.type == "cuda" and importlib.util.find_spec("gsplat") is not None


def render_gaussians(
    gaussians: Gaussians,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    height: int,
    width: int,
    background: torch.Tensor | None = None,
    backend: str = "auto",
) -> Render:
    """Render ``gaussians`` from V cameras: ``viewmats`` (V, 4, 4) world-to-camera (OpenCV axes), ``Ks`` (V, 3, 3)
    in pixels of the (height, width) output, ``background`` (3,) colour (default black, as the release).

    ``backend``: ``"gsplat"`` (CUDA, needs the gsplat package), ``"torch"`` (any device, the module docstring's
    re-implementation), or ``"auto"``: gsplat where :func:`gsplat_available`, torch otherwise. A pixel is at
    ``[i, i + 1)``, its centre at ``i + 0.5`` (gsplat's convention).
    """
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4) or Ks.shape != (len(viewmats), 3, 3):
        raise ValueError(f"viewmats must be (V, 4, 4) and Ks (V, 3, 3), got {tuple(viewmats.shape)}, {tuple(Ks.shape)}")
    device = gaussians.means.device
    background = torch.zeros(3, device=device) if background is None else background.to(device).float()
    if backend == "auto":
        backend = "gsplat" if gsplat_available(device) else "torch"
    if backend == "gsplat":
        from gsplat import rasterization  # optional: CUDA only

        colors, alphas, _ = rasterization(
            means=gaussians.means.float(),
            quats=gaussians.rotations.float(),
            scales=gaussians.scales.float(),
            opacities=gaussians.opacities.float(),
            colors=gaussians.harmonics.float(),
            viewmats=viewmats.float(),
            Ks=Ks.float(),
            width=width,
            height=height,
            sh_degree=gaussians.sh_degree,
            backgrounds=background.expand(len(viewmats), 3),
            packed=False,
        )
        return Render(colors.permute(0, 3, 1, 2), alphas.permute(0, 3, 1, 2))
    if backend != "torch":
        raise ValueError(f"backend must be 'auto', 'gsplat' or 'torch', got {backend!r}")
    gaussians = Gaussians(
        *(getattr(gaussians, f).float() for f in ("means", "scales", "rotations", "opacities", "harmonics"))
    )
    views = [
        _rasterize_torch(gaussians, viewmat.float(), K.float(), height, width, background)
        for viewmat, K in zip(viewmats, Ks, strict=True)
    ]
    return Render(torch.stack([c for c, _ in views]), torch.stack([a for _, a in views]))
