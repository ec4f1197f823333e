"""Reprojection consistency, the Kornia analogue of World-R1's render-and-compare reward: re-render each frame of a
pair from the other with depth and the estimated relative pose, and compare."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from world_r1.geometry import VideoGeometry, intrinsics_from_fov, resized
from world_r1.geometry.depth import DepthSource, TriangulatedDepth
from world_r1.geometry.lpips import LPIPS
from world_r1.geometry.perceptual import PerceptualDistance
from world_r1.geometry.reprojection import (
    PairReconstruction,
    densify,
    depth_agreement,
    explained_error,
    homography_prediction,
    photometric_agreement,
    reconstruct_pairs,
    reproject,
)
from world_r1.rewards.base import GeometricReward
from world_r1.rewards.epipolar import motion_weighted_mean

_PAIR_KEYS = ("explained", "homography", "psnr", "ssim", "psnr_copy", "ssim_copy", "depth_agreement", "coverage")
_KEYS = ("score", *_PAIR_KEYS, "parallax_px", "degenerate")
_WORST = {key: 0.0 for key in _KEYS[:-1]}


def _lpips_mean(values: torch.Tensor, ok: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(B,) mean perceptual distance over each video's measured pairs; a video with none reads as the worst (1)."""
    mean = (values.reshape(ok.shape) * ok).sum(1) / count.clamp_min(1)
    return torch.where(count > 0, mean, torch.ones_like(mean))


class DepthConsistencyReward(GeometricReward):
    """Per video, over frame pairs (i, j) of the shared geometry core:

    1. the pair's RANSAC fundamental matrix and an assumed field of view give the relative pose (essential matrix);
    2. the inlier matches are triangulated (baseline = 1) and a :class:`~world_r1.geometry.depth.DepthSource` turns
       them into dense depth of frames i and j (default: weights-free :class:`TriangulatedDepth`; or ``ModelDepth``,
       a learned model fitted to the same anchors);
    3. frame j is re-rendered from frame i (``kornia.geometry.depth.warp_frame_depth``), and also through the
       homography of the pair's matches (the rigid explanation of a camera that only turns or zooms, or of a distant
       scene: pure rotation is credited, not punished as degenerate); on the pixels that land inside frame i,
       ``explained = 1 - mse(rendered, j) / mse(i, j)`` of the better of the two is the share of the change from i to
       j that a rigid scene explains, against the motion-matched baseline of copying frame i
       (:func:`~world_r1.geometry.reprojection.explained_error`);
    4. ``pair score = (1 - w_d) * explained + w_d * depth_agreement``, the latter the share of pixels whose
       scale-aligned depths agree within 10 %; ``score`` (B,) in [0, 1] is the pairs' mean where the camera moves
       (:func:`~world_r1.rewards.epipolar.motion_weighted_mean`).

    Against copying, a static video cannot score by mere similarity (it also earns no credit through the motion gate),
    a fast rigid camera scores like a slow one, and blur lowers both errors alike instead of buying PSNR. The paper's
    form, PSNR and SSIM (and LPIPS's form with a ``perceptual`` model) of the re-rendered against the real frame, is
    reported next to PSNR and SSIM of the copy. Depth agreement weighs 0 by default: the weights-free depth maps of
    both frames come from the same inlier matches and agree by construction; give it weight with a learned depth
    source.

    A pair that cannot be triangulated (fewer than ``min_points`` matches, a failing depth source) keeps its
    homography. A pair is degenerate, and scores 0 with its raw values 0, when its fundamental matrix is invalid (too
    few matches, RANSAC failure: black, constant, noise or unrelated frames), its two frames are identical (nothing to
    explain: a frozen video reads as degenerate, not as a perfect PSNR), or under ``min_coverage`` of frame j lands
    inside frame i in its re-rendering. A 1-frame video has no pairs. Raw terms (B,), means over the non-degenerate
    pairs (0 if none): ``explained``, ``homography`` (the homography's share alone), ``psnr`` (dB) and ``ssim`` of the
    re-rendering, ``psnr_copy`` and ``ssim_copy`` of the copy, ``depth_agreement``, ``coverage``, with a
    ``perceptual`` model ``lpips`` (1 for a video with no measured pair: lower is better, so never a perfect-looking
    0); and ``parallax_px``, ``degenerate`` (1 if any pair was degenerate).

    ``videos`` are (B, F, 3, H, W) in [0, 1] on any device; everything is computed at the geometry core's analysis
    resolution (long side at most ``max_side``), so PSNR and SSIM are those of the downscaled frames.
    """

    def __init__(
        self,
        depth: DepthSource | None = None,
        perceptual: LPIPS | PerceptualDistance | None = None,
        fov_deg: float = 60.0,
        depth_weight: float = 0.0,
        min_coverage: float = 0.2,
        min_points: int = 12,
        min_parallax_px: float = 2.0,
    ) -> None:
        """
        Args:
            depth: the depth source (default :class:`TriangulatedDepth`, weights-free).
            perceptual: adds the raw ``lpips`` of re-rendered against real frames: :class:`~world_r1.geometry.LPIPS`
                (AlexNet, the published metric) or a :class:`PerceptualDistance` (LPIPS's form on any backbone);
                None: off.
            fov_deg: assumed horizontal field of view of the generated videos.
            depth_weight: weight of the depth agreement against the explained change (0: see above).
            min_coverage: share of frame j's pixels that must land inside frame i.
            min_points: triangulated matches a pair needs.
            min_parallax_px: median match displacement (analysis pixels) of a pair for full weight.
        """
        super().__init__()
        if not 0.0 <= depth_weight <= 1.0:
            raise ValueError(f"depth_weight must be in [0, 1], got {depth_weight}.")
        self.depth = depth if depth is not None else TriangulatedDepth()
        self.perceptual = perceptual
        self.fov_deg, self.depth_weight = fov_deg, depth_weight
        self.min_coverage, self.min_points, self.min_parallax_px = min_coverage, min_points, min_parallax_px
        self.worst = dict(_WORST) | ({"lpips": 1.0} if perceptual is not None else {})

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
        frames = resized(videos[:, used].float().clamp(0, 1).flatten(0, 1), size)
        frames = frames.reshape(batch, len(used), 3, *size)
        intrinsics = intrinsics_from_fov(self.fov_deg, *size).to(frames.device)

        valid_pairs = [k for k in range(batch * num_pairs) if bool(geometry.valid[k])]
        reconstructions = reconstruct_pairs(analysis, intrinsics, self.min_points, valid_pairs)

        keys = (*_PAIR_KEYS, "lpips") if self.perceptual is not None else _PAIR_KEYS
        pair_terms = {key: torch.zeros(batch * num_pairs, device=frames.device) for key in keys}
        ok = torch.zeros(batch * num_pairs, dtype=torch.bool, device=frames.device)
        if valid_pairs:
            self._score_pairs(frames, slots, intrinsics, analysis, valid_pairs, reconstructions, pair_terms, ok)

        explained = pair_terms["explained"]
        pair_score = (1 - self.depth_weight) * explained + self.depth_weight * pair_terms["depth_agreement"]
        ok_pairs = ok.reshape(batch, num_pairs)
        parallax = analysis.per_video(geometry.parallax_px)
        score = motion_weighted_mean(pair_score.reshape(batch, num_pairs), parallax, ok_pairs, self.min_parallax_px)

        ok_b = ok_pairs.float()
        count = ok_b.sum(1)

        def mean_ok(values: torch.Tensor) -> torch.Tensor:
            return (values.reshape(batch, num_pairs) * ok_b).sum(1) / count.clamp_min(1)

        return {
            "score": score,
            "explained": mean_ok(explained),
            "psnr": mean_ok(pair_terms["psnr"]),
            "ssim": mean_ok(pair_terms["ssim"]),
            "depth_agreement": mean_ok(pair_terms["depth_agreement"]),
            "homography": mean_ok(pair_terms["homography"]),
            "coverage": mean_ok(pair_terms["coverage"]),
            "psnr_copy": mean_ok(pair_terms["psnr_copy"]),
            "ssim_copy": mean_ok(pair_terms["ssim_copy"]),
            **({"lpips": _lpips_mean(pair_terms["lpips"], ok_b, count)} if "lpips" in pair_terms else {}),
            "parallax_px": parallax.mean(1),
            "degenerate": (count < num_pairs).float(),
        }

    def _score_pairs(
        self,
        frames: torch.Tensor,
        pairs: torch.Tensor,
        intrinsics: torch.Tensor,
        analysis: VideoGeometry,
        index: list[int],
        reconstructions: dict[int, PairReconstruction],
        pair_terms: dict[str, torch.Tensor],
        ok: torch.Tensor,
    ) -> None:
        """Re-render frame j of every pair at the flat pair indices ``index`` (``b * P + p``, pairs with a valid
        geometry) through its homography and, where ``reconstructions`` has it, through depth and pose; the better
        rigid explanation counts. Fills ``pair_terms`` and ``ok`` (each (B * P,)). ``frames`` (B, U, 3, h, w) are the
        U used frames at the analysis size, ``pairs`` (P, 2) index them, ``intrinsics`` is (3, 3)."""
        num_pairs = len(pairs)
        flat = torch.tensor(index, device=frames.device)
        video, pair = flat // num_pairs, flat % num_pairs
        image_i = frames[video, pairs[pair, 0]]
        image_j = frames[video, pairs[pair, 1]]
        matches = [analysis.matches.of_pair(k) for k in index]
        predicted, valid = homography_prediction(image_i, [m[0] for m in matches], [m[1] for m in matches])
        homography = explained_error(predicted, image_i, image_j, valid)
        best = homography * (valid.float().mean((1, 2, 3)) >= self.min_coverage)
        agreement = torch.zeros_like(best)
        rendered = self._render_with_depth(image_i, image_j, intrinsics, [reconstructions.get(k) for k in index])
        if rendered is not None:
            depth_image, depth_valid, depth_agreement_ = rendered
            by_depth = explained_error(depth_image, image_i, image_j, depth_valid)
            by_depth = by_depth * (depth_valid.float().mean((1, 2, 3)) >= self.min_coverage)
            use_depth = by_depth > best
            predicted = torch.where(use_depth[:, None, None, None], depth_image, predicted)
            valid = torch.where(use_depth[:, None, None, None], depth_valid, valid)
            best, agreement = torch.maximum(best, by_depth), depth_agreement_
        psnr, ssim = photometric_agreement(predicted, image_j, valid)
        psnr_copy, ssim_copy = photometric_agreement(image_i, image_j, valid)
        coverage = valid.float().mean((1, 2, 3))
        changed = (image_i - image_j).square().mean((1, 2, 3)) > 1e-6  # identical frames: nothing to explain
        good = changed & (coverage >= self.min_coverage) & torch.isfinite(psnr) & torch.isfinite(ssim)
        values = {
            "explained": best,
            "homography": homography,
            "psnr": psnr,
            "ssim": ssim,
            "psnr_copy": psnr_copy,
            "ssim_copy": ssim_copy,
            "depth_agreement": agreement,
            "coverage": coverage,
        }
        if self.perceptual is not None:
            values["lpips"] = self.perceptual(predicted, image_j, valid).to(best)
        for key, value in values.items():
            pair_terms[key][flat] = torch.where(good, torch.nan_to_num(value), torch.zeros_like(value))
        ok[flat] = good

    def _render_with_depth(
        self,
        image_i: torch.Tensor,
        image_j: torch.Tensor,
        intrinsics: torch.Tensor,
        reconstructions: list[PairReconstruction | None],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Frames j (N, 3, h, w) re-rendered from frames i through dense depth and the reconstructed pose, their
        valid masks (N, 1, h, w, empty where a pair has no reconstruction) and depth agreements (N,); None when no
        pair has a usable reconstruction."""
        have = [k for k, r in enumerate(reconstructions) if r is not None]
        if not have:
            return None
        sub_i = image_i[have]
        try:
            depth_i, depth_j, rotation, translation = densify(
                self.depth, sub_i, image_j[have], [reconstructions[k] for k in have]
            )
        except ValueError:  # too few anchors for this source: these pairs have only their homography
            return None
        result = reproject(sub_i, depth_i, depth_j, rotation, translation, intrinsics)
        rows = torch.tensor(have, device=image_i.device)
        image = torch.zeros_like(image_i).index_copy(0, rows, result.image)
        valid = torch.zeros_like(image_i[:, :1], dtype=torch.bool).index_copy(0, rows, result.valid)
        agreement = depth_agreement(result.predicted_depth, result.sampled_depth, result.valid)
        return image, valid, torch.zeros(len(image_i), device=image_i.device).index_copy(0, rows, agreement)
