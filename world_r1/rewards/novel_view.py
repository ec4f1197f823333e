"""S_meta, World-R1's critic of novel views: a vision-language model scores a view no frame of the video shows,
rendered from the video's own two-view reconstruction (or handed in by another render source)."""

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

SCORINGS = ("expectation", "parsed")

#: the rubric of the release's S_meta in substance (its exact text is not public): a 3D-vision expert rates the
#: reconstruction render 0-9 on these criteria, in this order, and answers one digit
RELEASE_RUBRIC = (
    "You are an expert in 3D computer vision. This image is a render of a 3D reconstruction of a scene, built from a "
    "generated video. Rate the reconstruction on a scale from 0 to 9. Give a high score when the reconstruction is "
    "dense, clean and complete, with smooth orbital parallax. Give a middle score when it is sparse or flat, when the "
    "camera motion is a mere pan or zoom, or when there is jitter or inconsistency. Give a low score when the scene is "
    "static or chaotic. Answer with a single digit."
)

#: the earlier rubric of this project, about the coherence of a two-view render with unseen regions black
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
    model rates it 0-9 (:meth:`rate_views`); ``score = rating / 9``.

    ``scoring="expectation"`` is the release's: the rating is the expected digit of the model's first answer token,
    ``sum_d d * softmax(logits of '0'..'9')_d`` (:meth:`~world_r1.rewards.vlm.VisionLanguageJudge.digit_expectation`),
    one forward pass that always yields a rating. ``scoring="parsed"`` reads the rating off a greedy answer with
    :func:`~world_r1.rewards.vlm.parse_score`.

    A consistent scene reconstructs into a view that looks like a photograph; a morphing one tears into fragments and
    doubled edges, which the critic sees. This is the release's S_meta with the Kornia two-view reconstruction in place
    of Depth Anything 3's Gaussians rendered from the camera farthest from the origin; such renders from another source
    are scored with :meth:`rate_views`. All videos' views go to the model in one batch.

    Worst score 0 with ``degenerate`` 1: no pair reconstructs (too few matches, a frozen or unrelated video), or (parsed
    scoring) the answer holds no rating in [0, 9] (junk, a refusal, "10"). Never raises on such input. Raw terms (B,):
    ``rating`` (0-9; 0 where none), ``answered`` (1 where the model rated the view), ``coverage`` (share of the view's
    pixels the frames cover; 0 without a view), ``parallax_px`` of the rendered pair.

    Args:
        model: hub id or local directory of a Qwen-VL style image-text-to-text model (Qwen3-VL, Qwen2.5-VL); the
            release's is Qwen/Qwen3-VL-4B-Instruct.
        question: the rubric the model answers (default :data:`RELEASE_RUBRIC`; :data:`RUBRIC` is the earlier one).
        scoring: ``"expectation"`` (the release's expected digit) or ``"parsed"`` (a greedy answer, parsed).
        offset: where the novel camera sits along the pair's motion (0.5: half way between the frames; above 1:
            beyond the second frame, where more of the view is unseen).
        depth: the depth source (default :class:`~world_r1.geometry.TriangulatedDepth`, weights-free).
        fov_deg: assumed horizontal field of view of the videos.
        min_points: triangulated matches a pair needs.
        min_coverage: a view covering less of its pixels is not shown to the model (degenerate).
        max_new_tokens: answer length (parsed scoring only).
        max_pixels: the largest image the model is shown (pixels, before its own patching).
        dtype: bf16 on GPUs, fp32 on CPU.
    """

    def __init__(
        self,
        model: str = "Qwen/Qwen3-VL-4B-Instruct",
        question: str = RELEASE_RUBRIC,
        scoring: str = "expectation",
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
        if scoring not in SCORINGS:
            raise ValueError(f"NovelViewReward.scoring must be one of {SCORINGS}, got {scoring!r}.")
        if not 0.0 < min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}.")
        self.judge = VisionLanguageJudge(model, max_new_tokens=max_new_tokens, max_pixels=max_pixels, dtype=dtype)
        self.question, self.scoring, self.offset = question, scoring, offset
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
        if shown:
            rated = self.rate_views(views[shown])
            index = torch.tensor([videos_shown[row] for row in shown], device=videos.device)
            for key, value in rated.items():
                out[key][index] = value.to(out[key])
        return out

    @torch.no_grad()
    def rate_views(self, views: torch.Tensor) -> dict[str, torch.Tensor]:
        """The critic's verdict on already-rendered views (N, 3, H, W) in [0, 1], with :attr:`question` and
        :attr:`scoring`: ``rating`` (0-9), ``score`` (rating / 9), ``answered`` and ``degenerate`` (0/1), each (N,)
        float32 on the views' device.

        The entry point for render sources other than the two-view path, e.g. the release's Depth Anything 3 Gaussian
        reconstruction rendered from the estimated camera farthest from the origin. A parsed answer without a rating
        gives rating and score 0, answered 0, degenerate 1; an expectation is always answered.
        """
        if views.ndim != 4 or views.shape[1] != 3:
            raise ValueError(f"views must be (N, 3, H, W) in [0, 1], got shape {tuple(views.shape)}")
        if self.scoring == "expectation":
            rating = self.judge.digit_expectation(views, self.question).float().to(views.device)
            answered = torch.ones_like(rating)
        else:
            answers = self.judge(views, self.question)
            parsed = [parse_score(answer, top=9) for answer in answers]
            for row, (answer, value) in enumerate(zip(answers, parsed, strict=True)):
                if value is None:
                    log.debug("novel-view critic gave no rating for view %d: %r", row, answer)
            answered = torch.tensor([value is not None for value in parsed], dtype=torch.float32, device=views.device)
            rating = torch.tensor([value or 0.0 for value in parsed], dtype=torch.float32, device=views.device)
        return {"rating": rating, "score": rating / 9.0, "answered": answered, "degenerate": 1.0 - answered}

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
