"""World-R1's 3D reward as released: S_recon, S_meta and S_traj read off ONE Depth Anything 3 reconstruction per video.

The release runs a "3D server" per video: one Depth Anything 3 (DA3-GIANT) pass gives per-frame cameras and 3D
Gaussians, and three scores come from them, each clipped to [0, 1]:

* ``S_recon = 1 - mean_f LPIPS(render_f, frame_f)``: the Gaussians re-rendered at 512 x 512 from every frame's camera
  (:class:`~world_r1.rewards.reconstruction.ReconstructionReward`);
* ``S_meta``: one render from the estimated camera farthest from the first one, rated 0-9 by Qwen3-VL-4B-Instruct with
  a rubric, as the expected digit over 9 (:meth:`~world_r1.rewards.novel_view.NovelViewReward.rate_views`);
* ``S_traj``: the reconstruction's F camera poses against the prompt's camera path sampled at F frames
  (:func:`~world_r1.rewards.path_scores.release_trajectory_score`; 0 for a prompt without camera words).

Any failure of the server scores all three 0. The release sums them (``R_3D`` in [0, 3]); here ``score`` is their mean
so that every reward term lies in [0, 1]: a weight of 3.0 on this term with all three parts reproduces the release's
sum. The release skips ``R_3D`` for its dynamic-scene batches; here that is the decoupled phase's weights
(``model.decoupled_weights`` without this term), since :class:`~world_r1.rewards.base.WeightedReward` evaluates no term
of weight 0.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from world_r1.camera import CameraPlan, MotionScale, camera_to_world, camera_trajectory, plan_for_prompt
from world_r1.reconstruction.da3 import RELEASE_MODEL
from world_r1.reconstruction.scene import Reconstruction
from world_r1.rewards.base import Reward, check_videos
from world_r1.rewards.novel_view import RELEASE_RUBRIC, NovelViewReward
from world_r1.rewards.path_scores import relative_to_first, release_trajectory_score
from world_r1.rewards.reconstruction import ReconstructionReward, render_at_inputs

log = logging.getLogger(__name__)

PARTS = ("recon", "meta", "traj")
RELEASE_CRITIC = "Qwen/Qwen3-VL-4B-Instruct"


def farthest_camera(poses: torch.Tensor) -> int:
    """Index of the camera of camera-to-world ``poses`` (F, 4, 4) whose centre lies farthest from the first camera's
    (the release's "farthest from the origin", its poses being relative to the first); the first such on ties."""
    return int(relative_to_first(poses)[:, :3, 3].norm(dim=-1).argmax())


def render_from_frame(
    reconstruction: Reconstruction, frame: int, size: int | tuple[int, int], backend: str = "auto"
) -> torch.Tensor:
    """(3, h, w) in [0, 1]: the Gaussians rendered from frame ``frame``'s estimated camera, exactly as
    :func:`~world_r1.rewards.reconstruction.render_at_inputs` renders that frame (which it is called for)."""
    one = slice(frame, frame + 1)
    confidence = reconstruction.confidence
    view = dataclasses.replace(
        reconstruction,
        poses=reconstruction.poses[one],
        intrinsics=reconstruction.intrinsics[one],
        depth=reconstruction.depth[one],
        confidence=None if confidence is None else confidence[one],
    )
    return render_at_inputs(view, size, backend)[0]


class _NotScored(nn.Module):
    """The distance of a reward configured without S_recon: never called, and says so if it is."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("S_recon is not among this Release3DReward's parts: add 'recon' to parts.")


class Release3DReward(Reward):
    """World-R1's ``R_3D`` from one Depth Anything 3 reconstruction per video (see the module docstring).

    ``score`` is the mean of the configured ``parts`` in [0, 1] (weight 3.0 with all three parts: the release's sum).
    Raw outputs (B,): ``S_recon``, ``S_meta``, ``S_traj`` (each in [0, 1]; NaN for a part not in ``parts``), ``lpips``
    (S_recon's mean distance; NaN where not measured), ``farthest_frame`` (the frame whose camera S_meta renders from;
    NaN without a reconstruction) and ``degenerate``.

    Degenerate (every configured part 0, ``degenerate`` 1, a log line naming the reason), as the release scores a
    failed 3D server: fewer than 2 frames, a blank first frame, a reconstruction that raises or gives non-finite
    cameras, and a render, critic or path score that raises. A prompt without camera words is no failure: its
    ``S_traj`` is 0 (the release's rule), its other parts are scored.

    Per-sample ``cameras`` (an explicit camera description or None, as
    :class:`~world_r1.rewards.ReleaseTrajectoryReward` reads them) override the prompt's camera words; an explicit
    description that does not parse raises before any reconstruction. ``reconstructions`` (one per video, from
    :meth:`reconstruct`) may be handed in to reuse a pass.

    Args:
        reconstruction: Depth Anything 3 hub id or folder with the Gaussian head (the release's
            ``depth-anything/DA3-GIANT``).
        critic: the S_meta critic, a Qwen-VL hub id or folder (the release's ``Qwen/Qwen3-VL-4B-Instruct``); None
            for none (then ``parts`` must leave out ``"meta"``). Not loaded where ``parts`` leaves out ``"meta"``.
        rubric: the question the critic answers with one digit 0-9.
        distance: S_recon's perceptual distance, ``forward(a, b) -> (N,)`` (default: LPIPS-AlexNet, as the release);
            not built where ``parts`` leaves out ``"recon"``.
        render_size: side of the square renders (S_recon's and S_meta's), 512 in the release.
        parts: which of ``"recon"``, ``"meta"``, ``"traj"`` are scored and averaged into ``score``.
        motion: the scale and convention of the prompt's camera path (default: the release's, ``MotionScale()``).
        process_res: long side of the frames Depth Anything 3 sees (504 in the release).
        max_pixels: the largest image the critic is shown (512 x 512: the release's render, unshrunk).
        backend: the Gaussian renderer, ``"auto"``, ``"gsplat"`` or ``"torch"`` (see
            :func:`~world_r1.reconstruction.render_gaussians`).
        dtype: the critic's weights, bf16 on GPUs, fp32 on CPU (Depth Anything 3 runs bf16 autocast on CUDA itself).
    """

    def __init__(
        self,
        reconstruction: str = RELEASE_MODEL,
        critic: str | None = RELEASE_CRITIC,
        rubric: str = RELEASE_RUBRIC,
        distance: nn.Module | None = None,
        render_size: int = 512,
        parts: tuple[str, ...] = PARTS,
        motion: MotionScale | None = None,
        process_res: int = 504,
        max_pixels: int = 512 * 512,
        backend: str = "auto",
        dtype: str = "bf16",
    ) -> None:
        super().__init__()
        parts = tuple(parts)
        unknown = sorted(set(parts) - set(PARTS))
        if not parts or unknown or len(set(parts)) != len(parts):
            raise ValueError(f"Release3DReward.parts must name distinct parts among {PARTS}, got {parts}.")
        if "meta" in parts and critic is None:
            raise ValueError("Release3DReward.parts has 'meta' but critic is None: name a critic or drop 'meta'.")
        self.parts = tuple(part for part in PARTS if part in parts)
        self.scene = ReconstructionReward(
            reconstruction,
            distance=distance if "recon" in parts else _NotScored(),
            render_size=render_size,
            process_res=process_res,
            backend=backend,
        )
        self.critic = (
            NovelViewReward(critic, question=rubric, max_pixels=max_pixels, dtype=dtype) if "meta" in parts else None
        )
        self.motion = motion or MotionScale()

    @property
    def render_size(self) -> int:
        return self.scene.render_size

    def reconstruct(self, videos: torch.Tensor) -> list[Reconstruction | None]:
        """One reconstruction per video of (B, F, 3, H, W), None where the video is degenerate or the pass failed
        (logged): :meth:`~world_r1.rewards.reconstruction.ReconstructionReward.reconstruct`."""
        return self.scene.reconstruct(videos)

    @torch.no_grad()
    def forward(
        self,
        videos: torch.Tensor,
        prompts: Sequence[str],
        cameras: Sequence[str | None] | None = None,
        reconstructions: Sequence[Reconstruction | None] | None = None,
        **metadata: Any,
    ) -> dict[str, torch.Tensor]:
        check_videos(videos)
        batch, device = videos.shape[0], videos.device
        if len(prompts) != batch:
            raise ValueError(f"got {len(prompts)} prompts for {batch} videos.")
        plans = [plan_for_prompt(p, None if cameras is None else cameras[b]) for b, p in enumerate(prompts)]
        if reconstructions is None:
            reconstructions = self.reconstruct(videos)
        if len(reconstructions) != batch:
            raise ValueError(f"got {len(reconstructions)} reconstructions for {batch} videos.")
        scenes: list[Reconstruction | None] = list(reconstructions)  # None: this video's "3D server" failed
        for b, scene in enumerate(scenes):
            if scene is not None and not bool(torch.isfinite(scene.poses).all()):
                log.warning("release 3D reward: video %d's reconstruction has non-finite cameras; scored 0", b)
                scenes[b] = None
        nan = torch.full((batch,), float("nan"), device=device)
        out = {key: nan.clone() for key in ("S_recon", "S_meta", "S_traj", "lpips", "farthest_frame")}
        for b, scene in enumerate(scenes):
            if scene is not None:
                out["farthest_frame"][b] = farthest_camera(scene.poses)
        if "recon" in self.parts:
            recon = self.scene(videos, prompts, reconstructions=scenes)
            out["S_recon"], out["lpips"] = recon["score"].to(device), recon["lpips"].to(device)
            scenes = [None if float(recon["degenerate"][b]) else scene for b, scene in enumerate(scenes)]
        if "traj" in self.parts:
            self._score_paths(scenes, plans, out["S_traj"])
        if "meta" in self.parts:
            self._score_views(scenes, out["farthest_frame"], out["S_meta"])
        failed = torch.tensor([scene is None for scene in scenes], device=device)
        scores = []
        for part in self.parts:
            key = f"S_{part}"
            out[key] = torch.where(failed, torch.zeros_like(out[key]), out[key])
            scores.append(out[key])
        out["score"] = torch.stack(scores).mean(0)
        out["degenerate"] = failed.float()
        return out

    def _score_paths(self, scenes: list[Reconstruction | None], plans: list[CameraPlan], values: torch.Tensor) -> None:
        """Fill ``values`` with S_traj of every reconstructed video; a video whose score raises loses its scene."""
        for b, scene in enumerate(scenes):
            if scene is None:
                continue
            try:
                target = camera_to_world(camera_trajectory(plans[b], scene.num_frames, self.motion))
                values[b] = release_trajectory_score(scene.poses.cpu(), target, plans[b].has_camera)["score"]
            except Exception:  # the release: any failure of the 3D server scores 0
                log.exception("release 3D reward: the camera path score of video %d failed; scored 0", b)
                scenes[b] = None

    def _score_views(self, scenes: list[Reconstruction | None], farthest: torch.Tensor, values: torch.Tensor) -> None:
        """Fill ``values`` with S_meta of every reconstructed video: one render per video from its farthest camera,
        all rated in one batch; a video whose render or rating raises loses its scene."""
        rows, views = [], []
        for b, scene in enumerate(scenes):
            if scene is None:
                continue
            try:
                views.append(render_from_frame(scene, int(farthest[b]), self.render_size, self.scene.backend))
                rows.append(b)
            except Exception:
                log.exception("release 3D reward: rendering video %d's farthest view failed; scored 0", b)
                scenes[b] = None
        if not rows:
            return
        try:
            rated = self.critic.rate_views(torch.stack([view.to(values.device) for view in views]))
        except Exception:
            log.exception("release 3D reward: the critic failed on videos %s; scored 0", rows)
            for b in rows:
                scenes[b] = None
            return
        values[torch.tensor(rows, device=values.device)] = rated["score"].to(values)
