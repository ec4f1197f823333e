"""S_recon, World-R1's reconstruction reward: re-render the video from its own 3D Gaussians and compare perceptually.

A video whose frames are views of one static 3D scene reconstructs into Gaussians that re-render every frame; a
morphing or incoherent video leaves no single scene that explains all frames, and the renders drift from them.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from world_r1.reconstruction.da3 import RELEASE_MODEL, DepthAnything3
from world_r1.reconstruction.gaussians import render_gaussians
from world_r1.reconstruction.scene import Reconstruction
from world_r1.rewards.base import Reward, check_videos

log = logging.getLogger(__name__)


def default_distance() -> nn.Module:
    """LPIPS with AlexNet (the release's distance), from :mod:`world_r1.geometry.lpips`."""
    try:
        from world_r1.geometry.lpips import LPIPS
    except ImportError as error:
        raise ImportError(
            "the reconstruction reward's default distance is world_r1.geometry.lpips.LPIPS, which is not available "
            "here: pass distance=world_r1.geometry.perceptual.PerceptualDistance(...) or another module with "
            "forward(a, b) -> (N,)."
        ) from error
    return LPIPS()


def render_at_inputs(
    reconstruction: Reconstruction, size: int | tuple[int, int], backend: str = "auto"
) -> torch.Tensor:
    """(F, 3, h, w) in [0, 1]: the reconstruction's Gaussians rendered from every frame's own camera at ``size``
    (int: square), the intrinsics scaled per axis as the release does (a non-square frame is stretched, as are the
    frames it is compared with)."""
    if reconstruction.gaussians is None:
        raise ValueError("the reconstruction holds no Gaussians: reconstruct with gaussians=True.")
    height, width = (size, size) if isinstance(size, int) else size
    render = render_gaussians(
        reconstruction.gaussians,
        reconstruction.extrinsics,
        reconstruction.intrinsics_at(height, width),
        height,
        width,
        backend=backend,
    )
    return render.colors.clamp(0, 1)


def check_backend(backend: str) -> None:
    """Raise at start-up, naming the fix, where the renderer ``backend`` cannot run on this machine: gsplat
    rasterises on CUDA only, with its package installed."""
    if backend not in ("auto", "gsplat", "torch"):
        raise ValueError(f"backend must be 'auto', 'gsplat' or 'torch', got {backend!r}.")
    if backend == "gsplat" and not torch.cuda.is_available():
        raise ValueError("backend: gsplat rasterises on CUDA and this machine has none: use backend: auto (or torch).")
    if backend == "gsplat" and importlib.util.find_spec("gsplat") is None:
        raise ValueError("backend: gsplat needs the gsplat package: pip install gsplat==1.5.3, or use backend: auto.")


class ReconstructionReward(Reward):
    """``score = clip(1 - mean_f d(render_f, frame_f), 0, 1)``, ``d`` a perceptual distance (LPIPS-AlexNet, as the
    release), ``render_f`` the video's Depth Anything 3 Gaussians rendered from frame f's estimated camera at
    ``render_size`` x ``render_size``, ``frame_f`` the frame resized there (bilinear, as the release).

    The release renders a path built from the cameras (interpolated between frames, smoothed, with wander and
    dolly-zoom views inserted half way) and compares its first F renders with the F frames; here every frame is
    compared with the render from its own camera. The two agree at frame 0 only: for 81 frames the release's path
    has 161 views (two per frame interval), so its render f sits near frame f/2's (smoothed) camera.

    ``reconstructions`` (one :class:`~world_r1.reconstruction.Reconstruction` per video, from :meth:`reconstruct`)
    may be handed in so that terms reading the same cameras share one reconstruction pass. Degenerate (score 0,
    ``degenerate`` 1, a log line naming the reason): fewer than 2 frames, a blank first frame (no content to
    reconstruct), or any failure of the reconstruction or render (the release's "3D server failed" rule). Raw terms
    (B,): ``lpips`` (the mean distance; NaN where not measured) and ``degenerate``.

    Args:
        model: Depth Anything 3 hub id or folder (needs the Gaussian head: ``depth-anything/DA3-GIANT``).
        distance: module with ``forward(a, b) -> (N,)`` for images (N, 3, H, W) in [0, 1] (default: LPIPS-AlexNet).
        render_size: side of the square renders and resized frames (512 in the release).
        process_res: long side of the frames the reconstructor sees (504 in the release).
        chunk: frames per call of the distance.
        blank_std: a first frame whose pixel standard deviation is below this is blank.
        backend: the Gaussian renderer, ``"auto"`` (gsplat on CUDA where installed, torch otherwise), ``"gsplat"``
            or ``"torch"``.
    """

    def __init__(
        self,
        model: str = RELEASE_MODEL,
        distance: nn.Module | None = None,
        render_size: int = 512,
        process_res: int = 504,
        chunk: int = 16,
        blank_std: float = 1e-3,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if render_size < 16 or chunk < 1:
            raise ValueError(f"render_size must be >= 16 and chunk >= 1, got {render_size}, {chunk}.")
        check_backend(backend)
        self.reconstructor = DepthAnything3.from_pretrained(model, process_res=process_res)
        if not self.reconstructor.has_gaussians:
            raise ValueError(f"{model!r} has no Gaussian head; the reconstruction reward needs {RELEASE_MODEL!r}.")
        self.distance = distance if distance is not None else default_distance()
        self.render_size, self.chunk, self.blank_std, self.backend = render_size, chunk, blank_std, backend

    def degenerate_reason(self, video: torch.Tensor) -> str | None:
        """Why ``video`` (F, 3, H, W) cannot be judged, or None."""
        if video.shape[0] < 2:
            return f"{video.shape[0]} frame(s): a reconstruction needs at least 2"
        if float(video[0].float().std()) < self.blank_std:
            return "the first frame is blank"
        return None

    @torch.no_grad()
    def reconstruct(self, videos: torch.Tensor) -> list[Reconstruction | None]:
        """One reconstruction per video of (B, F, 3, H, W), None where the video is degenerate or the pass failed
        (logged)."""
        check_videos(videos)
        out: list[Reconstruction | None] = []
        for index, video in enumerate(videos):
            reason = self.degenerate_reason(video)
            if reason is not None:
                log.info("reconstruction reward: video %d is degenerate (%s); scored 0", index, reason)
                out.append(None)
                continue
            try:
                out.append(self.reconstructor(video))
            except Exception:  # the release scores any failure of its 3D server as 0
                log.exception("reconstruction reward: Depth Anything 3 failed on video %d; scored 0", index)
                out.append(None)
        return out

    def distances(self, video: torch.Tensor, reconstruction: Reconstruction) -> torch.Tensor:
        """(F,) the distance of every frame of ``video`` (F, 3, H, W) to its render."""
        renders = render_at_inputs(reconstruction, self.render_size, self.backend).to(video.device)
        size = (self.render_size, self.render_size)
        frames = F.interpolate(video.float(), size=size, mode="bilinear", align_corners=False).clamp(0, 1)
        return torch.cat(
            [
                self.distance(renders[i : i + self.chunk], frames[i : i + self.chunk]).float().reshape(-1)
                for i in range(0, len(frames), self.chunk)
            ]
        )

    @torch.no_grad()
    def forward(
        self,
        videos: torch.Tensor,
        prompts: Sequence[str],
        reconstructions: Sequence[Reconstruction | None] | None = None,
        **metadata: Any,
    ) -> dict[str, torch.Tensor]:
        check_videos(videos)
        batch, device = videos.shape[0], videos.device
        if reconstructions is None:
            reconstructions = self.reconstruct(videos)
        if len(reconstructions) != batch:
            raise ValueError(f"got {len(reconstructions)} reconstructions for {batch} videos.")
        lpips = torch.full((batch,), float("nan"), device=device)
        for index, (video, reconstruction) in enumerate(zip(videos, reconstructions, strict=True)):
            if reconstruction is None or self.degenerate_reason(video) is not None:
                continue
            try:
                lpips[index] = self.distances(video, reconstruction).mean()
            except Exception:  # as the release: a failed render scores 0
                log.exception("reconstruction reward: rendering or scoring video %d failed; scored 0", index)
        measured = torch.isfinite(lpips)
        score = torch.where(measured, (1 - lpips).clamp(0, 1), torch.zeros_like(lpips))
        return {"score": score, "lpips": lpips, "degenerate": (~measured).float()}
