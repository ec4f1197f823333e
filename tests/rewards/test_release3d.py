"""The release's 3D reward on a tiny random Depth Anything 3, a tiny Qwen3-VL critic and random LPIPS weights:
all three parts come from one reconstruction pass per video, each equals its release formula computed here on that
reconstruction, failures score every part 0 as degenerate, and a subset of parts is scored and averaged alone."""

import dataclasses
import logging
import math

import pytest
import torch
from jsonargparse import ArgumentParser
from torch import nn

from tests.geometry.test_lpips import random_heads, random_trunk
from tests.reconstruction.conftest import TINY_RES
from world_r1.camera import MotionScale, camera_to_world, camera_trajectory, plan_for_prompt
from world_r1.geometry.lpips import LPIPS
from world_r1.rewards.path_scores import release_trajectory_score
from world_r1.rewards.reconstruction import render_at_inputs
from world_r1.rewards.release3d import Release3DReward

pytest.importorskip("depth_anything_3", reason="needs the depth-anything-3 package (see world_r1.reconstruction.da3)")
SIZE, FRAMES = 32, 4
PROMPTS = ["Camera trucks left. A quiet street at dusk.", "A quiet street at dusk."]
PARTS = ("S_recon", "S_meta", "S_traj")


@pytest.fixture(scope="module")
def tiny_da3(tmp_path_factory) -> str:
    from world_r1.reconstruction.da3 import TINY_CONFIG, DepthAnything3

    torch.manual_seed(0)
    return str(DepthAnything3(TINY_CONFIG, process_res=TINY_RES).save_pretrained(tmp_path_factory.mktemp("da3")))


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory) -> tuple[str, str]:
    """Random LPIPS-AlexNet weights under the official files' key names, the heads scaled so that distances of
    unrelated images stay under 1 (S_recon unclipped)."""
    folder = tmp_path_factory.mktemp("lpips")
    torch.save(random_trunk(0), folder / "alexnet.pth")
    torch.save({key: 0.05 * value for key, value in random_heads(1).items()}, folder / "alex.pth")
    return str(folder / "alexnet.pth"), str(folder / "alex.pth")


@pytest.fixture(scope="module")
def reward(tiny_da3, tiny_qwen3_vl, lpips_files) -> Release3DReward:
    return Release3DReward(
        tiny_da3,
        critic=tiny_qwen3_vl,
        distance=LPIPS(*lpips_files),
        render_size=SIZE,
        process_res=TINY_RES,
        max_pixels=64 * 64,
        dtype="fp32",
    )


def smooth_video(batch: int, frames: int, seed: int) -> torch.Tensor:
    coarse = torch.rand(batch * frames, 3, 4, 6, generator=torch.Generator().manual_seed(seed))
    fine = nn.functional.interpolate(coarse, size=(24, 40), mode="bilinear", align_corners=False)
    return fine.reshape(batch, frames, 3, 24, 40)


class Counting:
    """Wraps a Depth Anything 3's forward (an instance attribute, so nn.Module's call finds it): counts the calls,
    keeps the reconstructions, raises on the calls listed in ``fail``."""

    def __init__(self, model: nn.Module, fail: tuple[int, ...] = ()) -> None:
        self.model, self.real, self.fail = model, model.forward, fail
        self.outputs: list = []

    def __call__(self, frames, gaussians=True):
        call = len(self.outputs)
        self.outputs.append(None)
        if call in self.fail:
            raise RuntimeError("CUDA out of memory")
        self.outputs[call] = self.real(frames, gaussians)
        return self.outputs[call]

    def __enter__(self) -> "Counting":
        self.model.forward = self
        return self

    def __exit__(self, *exc) -> None:
        del self.model.forward


@pytest.fixture(scope="module")
def scored(reward):
    """Two videos scored once: the first with camera words, the second without."""
    videos = smooth_video(2, FRAMES, seed=0)
    with Counting(reward.scene.reconstructor) as counter:
        out = reward(videos, PROMPTS)
    return videos, out, counter.outputs


def test_every_part_comes_from_one_reconstruction_per_video(scored):
    _, out, reconstructions = scored
    assert len(reconstructions) == 2 and all(r is not None and r.num_frames == FRAMES for r in reconstructions)
    assert {*PARTS, "score", "lpips", "degenerate", "farthest_frame"} <= set(out)
    assert all(out[key].shape == (2,) for key in out)
    for key in PARTS:
        assert torch.isfinite(out[key]).all() and ((out[key] >= 0) & (out[key] <= 1)).all(), key
    assert out["degenerate"].tolist() == [0.0, 0.0]


def test_s_recon_is_one_minus_the_mean_distance_of_each_frame_to_its_render(reward, scored):
    videos, out, reconstructions = scored
    for b, reconstruction in enumerate(reconstructions):
        renders = render_at_inputs(reconstruction, SIZE)
        frames = nn.functional.interpolate(videos[b], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        distance = reward.scene.distance(renders, frames).mean().item()
        assert out["lpips"][b].item() == pytest.approx(distance, rel=1e-5)
        assert out["S_recon"][b].item() == pytest.approx(min(1.0, max(0.0, 1 - distance)), rel=1e-5)


def test_s_traj_is_the_release_score_of_the_reconstructed_cameras_against_the_prompts_path(scored):
    _, out, reconstructions = scored
    plan = plan_for_prompt(PROMPTS[0])
    assert plan.has_camera
    target = camera_to_world(camera_trajectory(plan, FRAMES, MotionScale()))
    expected = release_trajectory_score(reconstructions[0].poses, target, has_camera=True)["score"]
    assert expected > 0 and out["S_traj"][0].item() == pytest.approx(expected, rel=1e-6)


def test_a_prompt_without_camera_words_scores_s_traj_zero_and_is_not_degenerate(scored):
    _, out, _ = scored
    assert not plan_for_prompt(PROMPTS[1]).has_camera
    assert out["S_traj"][1].item() == 0.0 and out["degenerate"][1].item() == 0
    assert out["S_recon"][1].item() > 0 and out["S_meta"][1].item() > 0


def test_s_meta_rates_the_render_from_the_camera_farthest_from_the_first(reward, scored):
    videos, out, reconstructions = scored
    shown = []
    rate_views = reward.critic.rate_views
    reward.critic.rate_views = lambda views: shown.append(views) or rate_views(views)
    try:
        again = reward(videos, PROMPTS, reconstructions=reconstructions)
    finally:
        del reward.critic.rate_views
    assert len(shown) == 1 and shown[0].shape == (2, 3, SIZE, SIZE)  # one render per video, rated in one batch
    for b, reconstruction in enumerate(reconstructions):
        poses = reconstruction.poses.double()
        centres = (torch.linalg.inv(poses[0]) @ poses)[:, :3, 3]
        farthest = int(centres.norm(dim=1).argmax())
        assert farthest != 0 and out["farthest_frame"][b].item() == farthest
        renders = render_at_inputs(reconstruction, SIZE)
        torch.testing.assert_close(shown[0][b], renders[farthest])
        others = [f for f in range(FRAMES) if f != farthest]  # the check tells every other camera's render apart
        assert min((shown[0][b] - renders[f]).abs().max().item() for f in others) > 1e-3
        rated = reward.critic.rate_views(renders[farthest : farthest + 1])["score"].item()
        assert out["S_meta"][b].item() == pytest.approx(rated, rel=1e-5)
    torch.testing.assert_close(again["S_meta"], out["S_meta"])


def test_score_is_the_mean_of_the_three_parts(scored):
    _, out, _ = scored
    expected = (out["S_recon"] + out["S_meta"] + out["S_traj"]) / 3
    torch.testing.assert_close(out["score"], expected)


def test_a_failing_reconstruction_scores_every_part_zero_for_that_video_only(reward, scored, caplog):
    videos, reference, _ = scored
    with Counting(reward.scene.reconstructor, fail=(0,)) as counter, caplog.at_level(logging.ERROR):
        out = reward(videos, PROMPTS)
    assert len(counter.outputs) == 2
    assert [out[key][0].item() for key in (*PARTS, "score")] == [0.0] * 4 and out["degenerate"][0].item() == 1
    assert math.isnan(out["farthest_frame"][0].item()) and math.isnan(out["lpips"][0].item())
    assert "Depth Anything 3 failed on video 0" in caplog.text
    for key in (*PARTS, "score", "degenerate", "farthest_frame"):  # the other video as scored before
        assert out[key][1].item() == pytest.approx(reference[key][1].item(), rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize(
    ("video", "reason"),
    [
        (smooth_video(1, 1, seed=3), "1 frame(s)"),
        (torch.cat([torch.full((1, 1, 3, 24, 40), 0.5), smooth_video(1, 2, seed=3)], dim=1), "first frame is blank"),
    ],
    ids=["one-frame", "blank-first-frame"],
)
def test_short_and_blank_videos_are_degenerate_with_a_reason_and_no_reconstruction(reward, video, reason, caplog):
    with Counting(reward.scene.reconstructor) as counter, caplog.at_level(logging.INFO):
        out = reward(video, PROMPTS[:1])
    assert counter.outputs == []
    assert [out[key].item() for key in (*PARTS, "score")] == [0.0] * 4 and out["degenerate"].item() == 1
    assert reason in caplog.text


def test_a_failing_critic_scores_every_part_zero(reward, scored, monkeypatch, caplog):
    videos, _, reconstructions = scored

    def broken(views):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(reward.critic, "rate_views", broken)
    with caplog.at_level(logging.ERROR):
        out = reward(videos, PROMPTS, reconstructions=reconstructions)
    assert out["degenerate"].tolist() == [1.0, 1.0] and out["score"].tolist() == [0.0, 0.0]
    assert all(out[key].tolist() == [0.0, 0.0] for key in PARTS)
    assert "the critic failed on videos [0, 1]" in caplog.text


YAML = """
reward:
  class_path: world_r1.rewards.release3d.Release3DReward
  init_args:
    reconstruction: {da3}
    critic: null
    parts: [recon, traj]
    render_size: {size}
    process_res: {res}
    distance:
      class_path: world_r1.geometry.lpips.LPIPS
      init_args:
        backbone: {backbone}
        heads: {heads}
    motion:
      translation: 2.0
"""


@pytest.fixture(scope="module")
def without_critic(tiny_da3, lpips_files) -> Release3DReward:
    """Configured from YAML through jsonargparse, as a run's config builds it: S_recon and S_traj only."""
    parser = ArgumentParser()
    parser.add_argument("--reward", type=Release3DReward)
    text = YAML.format(da3=tiny_da3, size=SIZE, res=TINY_RES, backbone=lpips_files[0], heads=lpips_files[1])
    return parser.instantiate_classes(parser.parse_string(text)).reward


def test_recon_and_traj_without_a_critic_score_their_mean(without_critic, scored):
    videos, reference, reconstructions = scored
    assert without_critic.critic is None and without_critic.parts == ("recon", "traj")
    assert without_critic.motion == MotionScale(translation=2.0)
    with Counting(without_critic.scene.reconstructor) as counter:
        out = without_critic(videos[:1], PROMPTS[:1])
    assert len(counter.outputs) == 1 and out["degenerate"].item() == 0
    assert math.isnan(out["S_meta"].item())
    assert out["score"].item() == pytest.approx((out["S_recon"].item() + out["S_traj"].item()) / 2, rel=1e-6)
    assert out["S_recon"].item() == pytest.approx(reference["S_recon"][0].item(), rel=1e-5)
    target = camera_to_world(camera_trajectory(plan_for_prompt(PROMPTS[0]), FRAMES, MotionScale(translation=2.0)))
    expected = release_trajectory_score(reconstructions[0].poses, target)["score"]
    assert out["S_traj"].item() == pytest.approx(expected, rel=1e-6)


def test_handed_in_reconstructions_and_explicit_cameras_are_used(without_critic, scored):
    videos, _, reconstructions = scored
    with Counting(without_critic.scene.reconstructor, fail=(0,)) as counter:
        out = without_critic(videos, PROMPTS, cameras=["pan left", None], reconstructions=reconstructions)
    assert counter.outputs == []
    motion = without_critic.motion
    for b, plan in enumerate([plan_for_prompt("", "pan left"), plan_for_prompt(PROMPTS[1])]):
        target = camera_to_world(camera_trajectory(plan, FRAMES, motion))
        expected = release_trajectory_score(reconstructions[b].poses, target, plan.has_camera)["score"]
        assert out["S_traj"][b].item() == pytest.approx(expected, rel=1e-6)
    assert out["S_traj"][1].item() == 0.0


def test_non_finite_cameras_are_degenerate(without_critic, scored, caplog):
    videos, _, reconstructions = scored
    broken = dataclasses.replace(reconstructions[0], poses=torch.full_like(reconstructions[0].poses, float("nan")))
    with caplog.at_level(logging.WARNING):
        out = without_critic(videos, PROMPTS, reconstructions=[broken, reconstructions[1]])
    assert out["degenerate"].tolist() == [1.0, 0.0]
    assert out["S_recon"][0].item() == 0 and out["S_traj"][0].item() == 0 and out["score"][0].item() == 0
    assert "video 0's reconstruction has non-finite cameras" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parts": ("recon", "depth")}, "distinct parts among"),
        ({"parts": ()}, "distinct parts among"),
        ({"parts": ("traj", "traj")}, "distinct parts among"),
        ({"critic": None}, "'meta' but critic is None"),
    ],
)
def test_bad_parts_are_refused_before_loading(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Release3DReward(str(tmp_path / "missing"), **kwargs)
