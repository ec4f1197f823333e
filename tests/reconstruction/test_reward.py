"""S_recon end to end on the tiny random Depth Anything 3 and a tiny perceptual distance, and on hand-made scenes:
a video rendered from a known scene scores 1 against that scene and less against another video, every frame is
compared with the render from its own camera, too-short, blank and failing inputs score 0 as degenerate with a
log line, and handed-in reconstructions are reused (one reconstruction pass for the terms reading the cameras)."""

import logging
import math

import pytest
import torch
from torch import nn

from tests.reconstruction.conftest import TINY_RES
from world_r1.geometry.perceptual import PerceptualDistance
from world_r1.reconstruction import Gaussians, Reconstruction, render_gaussians
from world_r1.rewards.reconstruction import ReconstructionReward, default_distance, render_at_inputs

pytest.importorskip("depth_anything_3", reason="needs the depth-anything-3 package (see world_r1.reconstruction.da3)")
SIZE = 32


@pytest.fixture(scope="module")
def reward(tiny_da3, tiny_resnet) -> ReconstructionReward:
    return ReconstructionReward(
        tiny_da3, distance=PerceptualDistance(tiny_resnet), render_size=SIZE, process_res=TINY_RES
    )


def smooth_video(batch: int, frames: int, seed: int) -> torch.Tensor:
    coarse = torch.rand(batch * frames, 3, 4, 6, generator=torch.Generator().manual_seed(seed))
    fine = nn.functional.interpolate(coarse, size=(24, 40), mode="bilinear", align_corners=False)
    return fine.reshape(batch, frames, 3, 24, 40)


def scene_and_cameras(frames: int = 3) -> Reconstruction:
    """A wall of coloured Gaussians 3 units ahead, seen by a camera sliding to the right."""
    generator = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 24), torch.linspace(-1.5, 1.5, 36), indexing="ij")
    means = torch.stack([xs.flatten(), ys.flatten(), torch.full((xs.numel(),), 3.0)], dim=-1)
    n = len(means)
    gaussians = Gaussians(
        means, torch.full((n, 3), 0.06), torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4), torch.full((n,), 0.95),
        (torch.rand(n, 1, 3, generator=generator) - 0.5) / 0.282,
    )  # fmt: skip
    poses = torch.eye(4).repeat(frames, 1, 1)
    poses[:, 0, 3] = torch.linspace(0, 0.3, frames)
    K = torch.tensor([[30.0, 0, 21], [0, 30.0, 14], [0, 0, 1]]).expand(frames, 3, 3)
    return Reconstruction(poses, K, (28, 42), torch.full((frames, 28, 42), 3.0), gaussians=gaussians)


def test_scores_a_batch_end_to_end(reward):
    out = reward(smooth_video(2, 3, seed=0), ["a", "b"])
    assert set(out) == {"score", "lpips", "degenerate"}
    assert torch.isfinite(out["lpips"]).all() and (out["lpips"] > 0).all()
    assert torch.equal(out["degenerate"], torch.zeros(2))
    assert torch.allclose(out["score"], (1 - out["lpips"]).clamp(0, 1))


def test_a_video_rendered_from_its_own_scene_scores_one_and_another_video_less(reward):
    scene = scene_and_cameras()
    video = render_at_inputs(scene, SIZE)[None]  # the frames are the scene's own renders
    assert video.std() > 0.1
    same = reward(video, ["x"], reconstructions=[scene])
    other = reward(smooth_video(1, 3, seed=1).flip(-1), ["x"], reconstructions=[scene])
    assert same["score"].item() == pytest.approx(1.0, abs=1e-6) and same["lpips"].item() == pytest.approx(0, abs=1e-6)
    assert other["score"].item() < 0.99 and other["degenerate"].item() == 0


class Recorder(nn.Module):
    """A distance that remembers its inputs and returns the mean absolute difference per image."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.calls.append((a, b))
        return (a - b).abs().mean((1, 2, 3))


def test_every_frame_is_compared_with_the_render_from_its_own_camera(reward, monkeypatch):
    recorder, distance = Recorder(), reward.distance
    monkeypatch.setattr(reward, "chunk", 2)
    scene = scene_and_cameras(frames=3)
    video = smooth_video(1, 3, seed=2)
    reward.distance = recorder  # a submodule: set and restored by hand (monkeypatch would delete it)
    try:
        out = reward(video, ["x"], reconstructions=[scene])
    finally:
        reward.distance = distance
    renders = torch.cat([a for a, _ in recorder.calls])
    frames = torch.cat([b for _, b in recorder.calls])
    assert [len(a) for a, _ in recorder.calls] == [2, 1]
    for f in range(3):
        K = scene.intrinsics[f : f + 1] * torch.tensor([SIZE / 42, SIZE / 28, 1.0])[:, None]
        expected = render_gaussians(scene.gaussians, scene.extrinsics[f : f + 1], K, SIZE, SIZE).colors.clamp(0, 1)
        assert torch.allclose(renders[f], expected[0], atol=1e-5)
    resized = nn.functional.interpolate(video[0], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    assert torch.allclose(frames, resized)
    mean = (renders - frames).abs().mean((1, 2, 3)).mean()
    assert out["lpips"].item() == pytest.approx(mean.item(), rel=1e-5)
    assert out["score"].item() == pytest.approx(1 - mean.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("video", "reason"),
    [
        (smooth_video(1, 1, seed=3), "1 frame"),
        (torch.cat([torch.full((1, 1, 3, 24, 40), 0.5), smooth_video(1, 2, seed=3)], dim=1), "first frame is blank"),
    ],
    ids=["one-frame", "blank-first-frame"],
)
def test_short_and_blank_videos_are_degenerate_with_a_reason(reward, video, reason, caplog):
    with caplog.at_level(logging.INFO, logger="world_r1.rewards.reconstruction"):
        out = reward(video, ["x"])
    assert out["score"].item() == 0 and out["degenerate"].item() == 1 and math.isnan(out["lpips"].item())
    assert reason in caplog.text


def test_a_failing_reconstruction_scores_zero_for_that_video_only(reward, monkeypatch, caplog):
    real = type(reward.reconstructor).forward
    calls = []

    def flaky(self, frames, gaussians=True):
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return real(self, frames, gaussians)

    monkeypatch.setattr(type(reward.reconstructor), "forward", flaky)
    with caplog.at_level(logging.ERROR, logger="world_r1.rewards.reconstruction"):
        out = reward(smooth_video(2, 3, seed=4), ["a", "b"])
    assert out["score"][0] == 0 and out["degenerate"][0] == 1 and math.isnan(out["lpips"][0].item())
    assert out["degenerate"][1] == 0 and torch.isfinite(out["lpips"][1])
    assert "Depth Anything 3 failed on video 0" in caplog.text


def test_reconstructions_made_once_are_reused(reward, monkeypatch):
    videos = smooth_video(1, 3, seed=5)
    reconstructions = reward.reconstruct(videos)
    assert reconstructions[0].poses.shape == (3, 4, 4) and reconstructions[0].intrinsics.shape == (3, 3, 3)

    def forbidden(*args, **kwargs):
        raise AssertionError("reconstructed twice")

    monkeypatch.setattr(type(reward.reconstructor), "forward", forbidden)
    out = reward(videos, ["x"], reconstructions=reconstructions)
    assert out["degenerate"].item() == 0
    with pytest.raises(ValueError, match="reconstructions for 1 videos"):
        reward(videos, ["x"], reconstructions=reconstructions * 2)


def test_without_the_lpips_module_the_default_distance_names_the_fix(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "world_r1.geometry.lpips", None)
    with pytest.raises(ImportError, match="PerceptualDistance"):
        default_distance()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_gpu_only_renderer_on_a_cpu_machine_is_refused_at_start_up_naming_the_fix():
    from world_r1.rewards.reconstruction import check_backend

    with pytest.raises(ValueError, match=r"backend: gsplat rasterises on CUDA .* use backend: auto"):
        check_backend("gsplat")
    with pytest.raises(ValueError, match="'auto', 'gsplat' or 'torch'"):
        check_backend("opengl")
    check_backend("auto")
    check_backend("torch")
