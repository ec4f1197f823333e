"""S_meta, World-R1's critic of novel views: a vision-language model scores a view no frame of the video shows,
rendered from the video's own two-view reconstruction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from world_r1.geometry import VideoGeometry, intrinsics_from_fov, resized
from world_r1.geometry.depth import DepthSource, TriangulatedDepth
from world_r1.geometry.novel_view import fill_small_holes, render_novel_view
from world_r1.geometry.reprojection import PairReconstruction, densify, reconstruct_pairs
from world_r1.rewards.base import GeometricReward
from world_r1.rewards.vlm import VisionLanguageJudge, parse_score

log = logging.getLogger(__name__)

RUBRIC = (
    "This image is a new view of a scene, rendered from a 3D reconstruction of two frames of a video. Black areas are "
    "parts of the scene the frames did not show: ignore them. Rate how coherent the 3D scene is on a scale from 0 to "
    "9: 9 means solid, undistorted objects and surfaces, as in a photograph taken from this viewpoint; 6 means mostly "
    "coherent with some stretching or doubled edges; 3 means heavy distortion, smearing or floating fragments; 0 means "
    "no recognisable scene. Answer with a single digit."
)


class NovelViewReward(GeometricReward):
    """Per video: the pair of the geometry core with the most parallax that reconstructs (pose from the essential
    matrix, triangulated inlier matches, dense depth of both frames from ``depth``) is rendered from a camera
    ``offset`` of the way along its motion (:func:`~world_r1.geometry.novel_view.render_novel_view`: both frames'
    pixels splatted with a z-buffer, cracks between points filled, unseen regions left black), and a vision-language
    model answers ``question``; ``score = rating / 9`` with the rating parsed by
    :func:`~world_r1.rewards.vlm.parse_score`.

    A consistent scene reconstructs into a view that looks like a photograph; a morphing one tears into fragments and
    doubled edges, which the critic sees. This is the release's S_meta with the Kornia two-view reconstruction in place
    of Depth Anything 3's Gaussians. All videos' views go to the model in one batch.

    Worst score 0 with ``degenerate`` 1: no pair reconstructs (too few matches, a frozen or unrelated video), or the
    answer holds no rating in [0, 9] (junk, a refusal, "10"). Never raises on such input. Raw terms (B,): ``rating``
    (0-9; 0 where none), ``answered`` (1 where a rating was parsed), ``coverage`` (share of the view's pixels the
    frames cover; 0 without a view), ``parallax_px`` of the rendered pair.

    Args:
        model: hub id or local directory of a Qwen-VL style image-text-to-text model (Qwen2.5-VL, Qwen3-VL).
        question: the rubric the model answers.
        offset: where the novel camera sits along the pair's motion (0.5: half way between the frames; above 1:
            beyond the second frame, where more of the view is unseen).
        depth: the depth source (default :class:`~world_r1.geometry.TriangulatedDepth`, weights-free).
        fov_deg: assumed horizontal field of view of the videos.
        min_points: triangulated matches a pair needs.
        min_coverage: a view covering less of its pixels is not shown to the model (degenerate).
        max_new_tokens: answer length.
        max_pixels: the largest image the model is shown (pixels, before its own patching).
        dtype: bf16 on GPUs, fp32 on CPU.
    """

    def __init__(
        self,
        model: str = "Qwen/Qwen2.5-VL-7B-Instruct",
        question: str = RUBRIC,
        offset: float = 0.5,
        depth: DepthSource | None = None,
        fov_deg: float = 60.0,
        min_points: int = 12,
        min_coverage: float = 0.3,
        max_new_tokens: int = 8,
        max_pixels: int = 448 * 448,
        dtype: str = "bf16",
    ) -> None:
        super().__init__()
        if not question.strip():
            raise ValueError("NovelViewReward.question is empty: give the rubric the model answers with a 0-9 score.")
        if not 0.0 < min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}.")
        self.judge = VisionLanguageJudge(model, max_new_tokens=max_new_tokens, max_pixels=max_pixels, dtype=dtype)
        self.question, self.offset = question, offset
        self.depth = depth if depth is not None else TriangulatedDepth()
        self.fov_deg, self.min_points, self.min_coverage = fov_deg, min_points, min_coverage
        self.worst = {"score": 0.0, "rating": 0.0, "answered": 0.0, "coverage": 0.0, "parallax_px": 0.0}

    @torch.no_grad()
    def score(
        self, videos: torch.Tensor, prompts: Sequence[str], analysis: VideoGeometry, **metadata: Any
    ) -> dict[str, torch.Tensor]:
        batch, num_pairs = videos.shape[0], len(analysis.pairs)
        out = self.worst_case(batch, videos.device)
        intrinsics = intrinsics_from_fov(self.fov_deg, *analysis.size).to(videos.device)
        geometry = analysis.geometry
        parallax = analysis.per_video(geometry.parallax_px)
        chosen: dict[int, int] = {}  # video -> flat pair index with the most parallax among those that reconstruct
        reconstructions: dict[int, PairReconstruction] = {}
        valid = [k for k in range(len(geometry.valid)) if bool(geometry.valid[k])]
        for k in sorted(valid, key=lambda k: -float(geometry.parallax_px[k])):
            if k // num_pairs in chosen:
                continue  # this video's view is chosen: its other pairs need no reconstruction
            reconstructions |= reconstruct_pairs(analysis, intrinsics, self.min_points, [k])
            if k in reconstructions:
                chosen[k // num_pairs] = k
        if not chosen:
            return out
        videos_shown, keys = list(chosen), list(chosen.values())
        try:
            views, coverage = self.render(
                videos,
                analysis,
                intrinsics,
                [reconstructions[k] for k in keys],
                [analysis.pairs[k % num_pairs] for k in keys],
                videos_shown,
            )
        except ValueError:  # too few depth anchors for this depth source: nothing to render
            log.debug("novel-view rendering failed", exc_info=True)
            return out
        for row, (video, k) in enumerate(chosen.items()):
            out["coverage"][video] = coverage[row]
            out["parallax_px"][video] = parallax[video, k % num_pairs]
        shown = [row for row in range(len(keys)) if float(coverage[row]) >= self.min_coverage]
        answers = self.judge(views[shown], self.question) if shown else []
        for row, answer in zip(shown, answers, strict=True):
            video = videos_shown[row]
            rating = parse_score(answer, top=9)
            if rating is None:
                log.debug("novel-view critic gave no rating for video %d: %r", video, answer)
                continue
            out["rating"][video], out["answered"][video] = rating, 1.0
            out["score"][video], out["degenerate"][video] = rating / 9.0, 0.0
        return out

    def render(
        self,
        videos: torch.Tensor,
        analysis: VideoGeometry,
        intrinsics: torch.Tensor,
        reconstructions: list[PairReconstruction],
        pairs: list[torch.Tensor],
        video_rows: list[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Novel views (N, 3, h, w) at the analysis size of the N reconstructed pairs and their coverage (N,)."""
        rows = torch.tensor(video_rows, device=videos.device)
        index = torch.stack(pairs).to(videos.device)
        frames = videos[rows[:, None], index].float().clamp(0, 1)  # (N, 2, 3, H, W)
        frames = resized(frames.flatten(0, 1), analysis.size).unflatten(0, (len(rows), 2))
        image_i, image_j = frames[:, 0], frames[:, 1]
        depth_i, depth_j, rotation, translation = densify(self.depth, image_i, image_j, reconstructions)
        view, covered = render_novel_view(
            image_i, image_j, depth_i, depth_j, rotation, translation, intrinsics, self.offset
        )
        return fill_small_holes(view, covered), covered.float().mean((1, 2, 3))
