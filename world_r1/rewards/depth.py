"""Reprojection consistency, the Kornia analogue of World-R1's render-and-compare reward: re-render each frame of a
pair from the other with depth and the estimated relative pose, and compare."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from world_r1.geometry import VideoGeometry, intrinsics_from_fov
from world_r1.geometry.depth import DepthSource, TriangulatedDepth
from world_r1.geometry.reprojection import (
    PairReconstruction,
    depth_agreement,
    photometric_agreement,
    reconstruct_pair,
    reproject,
)
from world_r1.rewards.base import GeometricReward
from world_r1.rewards.epipolar import parallax_gate

_KEYS = ("score", "psnr", "ssim", "depth_agreement", "coverage", "parallax_px", "degenerate")
_WORST = {key: 0.0 for key in _KEYS[:-1]}


class DepthConsistencyReward(GeometricReward):
    """Per video, over frame pairs (i, j) of the shared geometry core:

    1. the pair's RANSAC fundamental matrix and an assumed field of view give the relative pose (essential matrix);
    2. the inlier matches are triangulated (baseline = 1) and a :class:`~world_r1.geometry.depth.DepthSource` turns
       them into dense depth of frames i and j (default: weights-free :class:`TriangulatedDepth`; or ``ModelDepth``,
       a learned model fitted to the same anchors);
    3. frame j is re-rendered from frame i (``kornia.geometry.depth.warp_frame_depth``) and compared on the pixels
       that land inside frame i: PSNR and SSIM (``kornia.metrics``), and the share of pixels whose scale-aligned
       depths agree within 10 %;
    4. ``pair score = gate(parallax) * [(1 - w_d) * (ssim + psnr_01) / 2 + w_d * depth_agreement]`` with
       ``psnr_01 = clip((psnr - psnr_floor) / (psnr_ceil - psnr_floor), 0, 1)``; ``score`` (B,) in [0, 1] is the mean
       over pairs.

    The parallax gate gives a static video no 3D credit (frozen frames re-render themselves perfectly). A pair is
    degenerate, and scores 0 with PSNR, SSIM and depth agreement 0, when its fundamental matrix is invalid (too few
    matches, RANSAC failure: black, constant, noise or unrelated frames), fewer than ``min_points`` matches
    triangulate, the depth source fails, or under ``min_coverage`` of frame j lands inside frame i. A 1-frame video
    has no pairs. Raw terms (B,): ``psnr`` (dB), ``ssim``, ``depth_agreement`` (means over non-degenerate pairs, 0 if
    none), ``coverage``, ``parallax_px`` and ``degenerate`` (1 if any pair was degenerate).

    ``videos`` are (B, F, 3, H, W) in [0, 1] on any device; everything is computed at the geometry core's analysis
    resolution (long side at most ``max_side``), so PSNR and SSIM are those of the downscaled frames.
    """

    def __init__(
        self,
        depth: DepthSource | None = None,
        fov_deg: float = 60.0,
        depth_weight: float = 0.25,
        psnr_floor: float = 10.0,
        psnr_ceil: float = 35.0,
        min_coverage: float = 0.2,
        min_points: int = 12,
        min_parallax_px: float = 2.0,
    ) -> None:
        """
        Args:
            depth: the depth source (default :class:`TriangulatedDepth`, weights-free).
            fov_deg: assumed horizontal field of view of the generated videos.
            depth_weight: weight of the depth agreement against the photometric terms.
            psnr_floor, psnr_ceil: PSNR (dB) mapped to 0 and 1.
            min_coverage: share of frame j's pixels that must land inside frame i.
            min_points: triangulated matches a pair needs.
            min_parallax_px: median match displacement (analysis pixels) for full credit.
        """
        super().__init__()
        if not 0.0 <= depth_weight <= 1.0 or psnr_ceil <= psnr_floor:
            raise ValueError("depth_weight must be in [0, 1] and psnr_ceil above psnr_floor.")
        self.depth = depth if depth is not None else TriangulatedDepth()
        self.fov_deg, self.depth_weight = fov_deg, depth_weight
        self.psnr_floor, self.psnr_ceil = psnr_floor, psnr_ceil
        self.min_coverage, self.min_points, self.min_parallax_px = min_coverage, min_points, min_parallax_px
        self.worst = dict(_WORST)

    @torch.no_grad()
    def score(
        self, videos: torch.Tensor, prompts: Sequence[str], analysis: VideoGeometry, **metadata: Any
    ) -> dict[str, torch.Tensor]:
        batch = videos.shape[0]
        pairs, geometry = analysis.pairs, analysis.geometry
        num_pairs = len(pairs)
        size = analysis.size
        # only the frames some pair uses, at the analysis size; ``slots`` maps frame indices into them
        used, slots = torch.unique(pairs, return_inverse=True)
        frames = F.interpolate(videos[:, used].float().clamp(0, 1).flatten(0, 1), size=size, mode="area")
        frames = frames.reshape(batch, len(used), 3, *size)
        intrinsics = intrinsics_from_fov(self.fov_deg, *size).to(frames.device)

        reconstructions, index = [], []
        for k in range(batch * num_pairs):
            if not bool(geometry.valid[k]):
                continue
            x_i, x_j = analysis.matches.of_pair(k)
            try:
                rec = reconstruct_pair(
                    geometry.fundamental[k], intrinsics, x_i, x_j, analysis.settings.ransac_px, self.min_points
                )
            except Exception:  # Kornia's pose/triangulation can fail on degenerate (e.g. motionless) geometry
                rec = None
            if rec is not None:
                reconstructions.append(rec)
                index.append(k)

        pair_terms = {key: torch.zeros(batch * num_pairs, device=frames.device) for key in _KEYS[:5]}
        ok = torch.zeros(batch * num_pairs, dtype=torch.bool, device=frames.device)
        if reconstructions:
            self._score_pairs(frames, slots, intrinsics, reconstructions, index, pair_terms, ok)

        gate = parallax_gate(geometry.parallax_px, self.min_parallax_px)
        psnr_01 = ((pair_terms["psnr"] - self.psnr_floor) / (self.psnr_ceil - self.psnr_floor)).clamp(0, 1)
        photometric = 0.5 * (pair_terms["ssim"].clamp(0, 1) + psnr_01)
        pair_score = gate * ((1 - self.depth_weight) * photometric + self.depth_weight * pair_terms["depth_agreement"])
        pair_score = torch.where(ok, pair_score, torch.zeros_like(pair_score))

        ok_b = ok.reshape(batch, num_pairs).float()
        count = ok_b.sum(1)

        def mean_ok(values: torch.Tensor) -> torch.Tensor:
            return (values.reshape(batch, num_pairs) * ok_b).sum(1) / count.clamp_min(1)

        return {
            "score": pair_score.reshape(batch, num_pairs).mean(1),
            "psnr": mean_ok(pair_terms["psnr"]),
            "ssim": mean_ok(pair_terms["ssim"]),
            "depth_agreement": mean_ok(pair_terms["depth_agreement"]),
            "coverage": mean_ok(pair_terms["coverage"]),
            "parallax_px": analysis.per_video(geometry.parallax_px).mean(1),
            "degenerate": (count < num_pairs).float(),
        }

    def _score_pairs(
        self,
        frames: torch.Tensor,
        pairs: torch.Tensor,
        intrinsics: torch.Tensor,
        reconstructions: list[PairReconstruction],
        index: list[int],
        pair_terms: dict[str, torch.Tensor],
        ok: torch.Tensor,
    ) -> None:
        """Depth, re-rendering and agreement for the reconstructed pairs, in one batch; fills ``pair_terms`` and
        ``ok`` (each (B * P,)) at the flat pair indices ``index`` (``b * P + p``). ``frames`` (B, U, 3, h, w) are the
        U used frames at the analysis size, ``pairs`` (P, 2) index them, ``intrinsics`` is (3, 3)."""
        num_pairs = len(pairs)
        flat = torch.tensor(index, device=frames.device)
        video, pair = flat // num_pairs, flat % num_pairs
        image_i = frames[video, pairs[pair, 0]]
        image_j = frames[video, pairs[pair, 1]]
        anchors = [r.points_i for r in reconstructions] + [r.points_j for r in reconstructions]
        anchor_depths = [r.depth_i for r in reconstructions] + [r.depth_j for r in reconstructions]
        try:
            depth = self.depth(torch.cat([image_i, image_j]), anchors, anchor_depths)
        except ValueError:  # too few anchors for this source: the pairs stay degenerate
            return
        n = len(reconstructions)
        depth = torch.nan_to_num(depth.float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
        rotation = torch.stack([r.rotation for r in reconstructions]).to(frames.device)
        translation = torch.stack([r.translation for r in reconstructions]).to(frames.device)
        result = reproject(image_i, depth[:n], depth[n:], rotation, translation, intrinsics)
        psnr, ssim = photometric_agreement(result.image, image_j, result.valid)
        agreement = depth_agreement(result.predicted_depth, result.sampled_depth, result.valid)
        coverage = result.valid.float().mean((1, 2, 3))
        good = (coverage >= self.min_coverage) & torch.isfinite(psnr) & torch.isfinite(ssim)
        for key, value in (("psnr", psnr), ("ssim", ssim), ("depth_agreement", agreement), ("coverage", coverage)):
            pair_terms[key][flat] = torch.where(good, torch.nan_to_num(value), torch.zeros_like(value))
        ok[flat] = good
