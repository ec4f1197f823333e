"""Robust two-view geometry per frame pair: fundamental matrix, inliers, Sampson error, parallax."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.geometry.epipolar import sampson_epipolar_distance
from kornia.geometry.ransac import RANSAC

from world_r1.geometry.matching import PairMatches


@dataclass
class PairGeometry:
    """Per-pair results, each (P,). ``valid`` is False where a pair had too few matches or RANSAC failed; its other
    values are then the worst case (0 inliers, ``inf`` error), never NaN. ``fundamental`` is (P, 3, 3) with
    ``x2^T F x1 = 0`` (zeros where invalid); ``match_error_px`` (M,) is every match's Sampson distance to its pair's
    fundamental matrix (``inf`` in invalid pairs), aligned with the :class:`PairMatches` it was estimated from."""

    num_matches: torch.Tensor
    inlier_ratio: torch.Tensor
    sampson_px: torch.Tensor
    parallax_px: torch.Tensor
    valid: torch.Tensor
    fundamental: torch.Tensor
    match_error_px: torch.Tensor


class EpipolarEstimator:
    """RANSAC fundamental matrices (Kornia) and consistency statistics for the pairs of a :class:`PairMatches`.

    Args:
        ransac_px: RANSAC inlier threshold in pixels.
        inlier_px: the (tighter) Sampson distance, in pixels, under which a match counts as consistent; a tight
            threshold separates rigid scenes from morphing ones better than the median error.
        max_iter: RANSAC batches of minimal samples, 2048 each (Kornia's ``"auto"`` batch size): a 16k-sample budget
            finds a rigid pair's model in the first batch and caps the cost on unrelated frames.
        min_matches: pairs with fewer matches are degenerate.
        seed: RANSAC sampling seed, for reproducible rewards.
    """

    def __init__(
        self, ransac_px: float = 1.0, inlier_px: float = 0.5, max_iter: int = 8, min_matches: int = 16, seed: int = 0
    ) -> None:
        self.inlier_px = inlier_px
        self.min_matches = max(min_matches, 8)
        self.ransac = RANSAC("fundamental", inl_th=ransac_px, max_iter=max_iter, seed=seed)

    def __call__(self, matches: PairMatches) -> PairGeometry:
        p = matches.num_pairs
        device = matches.points1.device
        out = PairGeometry(
            num_matches=torch.zeros(p, device=device),
            inlier_ratio=torch.zeros(p, device=device),
            sampson_px=torch.full((p,), float("inf"), device=device),
            parallax_px=torch.zeros(p, device=device),
            valid=torch.zeros(p, dtype=torch.bool, device=device),
            fundamental=torch.zeros(p, 3, 3, device=device),
            match_error_px=torch.full((len(matches.pair),), float("inf"), device=device),
        )
        for k in range(p):
            x1, x2 = matches.of_pair(k)
            out.num_matches[k] = len(x1)
            if len(x1):
                out.parallax_px[k] = (x2 - x1).norm(dim=1).median()
            if len(x1) < self.min_matches:
                continue
            try:
                fundamental, _ = self.ransac(x1.float(), x2.float())
            except Exception:  # RANSAC raises on degenerate samples (collinear points, too few unique points)
                continue
            if not torch.isfinite(fundamental).all():
                continue
            error = sampson_epipolar_distance(x1[None], x2[None], fundamental[None], squared=False)[0]
            error = torch.nan_to_num(error, nan=float("inf"))
            out.inlier_ratio[k] = (error < self.inlier_px).float().mean()
            out.sampson_px[k] = error.median()
            out.fundamental[k] = fundamental
            out.match_error_px[matches.pair == k] = error
            out.valid[k] = True
        return out
