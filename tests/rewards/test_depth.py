"""The reprojection (depth consistency) reward on rendered scenes with known geometry: rigid beats morphed beats
unrelated for every seed, the score falls as the warp grows, a static video earns nothing, PSNR tells rigid from
morphed, the re-rendering explains more than copying frame i, and the output carries the keys evaluation code
reads."""

import pytest
import torch

from tests.rewards.conftest import AMPLITUDES
from world_r1.rewards import DepthConsistencyReward

KEYS = {"score", "explained", "homography", "psnr", "ssim", "psnr_copy", "ssim_copy", "depth_agreement", "coverage"}
KEYS |= {"parallax_px", "degenerate"}


@pytest.fixture(scope="module")
def reward() -> DepthConsistencyReward:
    return DepthConsistencyReward()


@pytest.fixture(scope="module")
def scored(reward, scene_batch):
    return reward(scene_batch, [""] * len(scene_batch))


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_output_keys_and_ranges(scored):
    assert set(scored) == KEYS
    assert all(v.shape == (len(AMPLITUDES) + 2,) and torch.isfinite(v).all() for v in scored.values())
    assert ((scored["score"] >= 0) & (scored["score"] <= 1)).all()
    assert ((scored["ssim"] <= 1) & (scored["depth_agreement"] <= 1) & (scored["coverage"] <= 1)).all()


def test_rigid_beats_morphed_beats_unrelated(scored):
    score = scored["score"][: len(AMPLITUDES)]
    assert torch.all(score[1:] < score[:-1]), f"must fall as the warp grows: {score.tolist()}"
    assert score[0] > 0.8, score.tolist()
    assert scored["score"][len(AMPLITUDES)] < score[-1], scored["score"].tolist()
    assert torch.all(scored["degenerate"][: len(AMPLITUDES)] == 0)


def test_psnr_separates_rigid_from_morphed(scored):
    psnr, ssim = scored["psnr"], scored["ssim"]
    assert psnr[0] > 27 and ssim[0] > 0.85, (psnr.tolist(), ssim.tolist())
    assert psnr[0] > psnr[1] + 3, psnr.tolist()  # a 2-pixel morph already costs several dB
    assert scored["depth_agreement"][0] > 0.9 and scored["coverage"][0] > 0.5


def test_static_video_earns_no_3d_credit(scored):
    assert scored["score"][-1] == 0, scored["score"].tolist()
    assert scored["parallax_px"][-1] < 0.5


def test_configuration_is_checked():
    with pytest.raises(ValueError, match="depth_weight"):
        DepthConsistencyReward(depth_weight=1.5)
    with pytest.raises(ValueError, match="depth_weight"):
        DepthConsistencyReward(depth_weight=-0.1)


def test_rigid_rendering_explains_more_than_copying(scored):
    """The motion-matched baseline: the rigid re-rendering beats copying frame i by far, a morph much less so."""
    assert (scored["psnr"][0] > scored["psnr_copy"][0] + 5).all(), (scored["psnr"], scored["psnr_copy"])
    assert scored["explained"][0] > 0.8 and scored["explained"][0] > scored["explained"][3] + 0.2


def test_a_pair_that_cannot_triangulate_is_still_explained_by_its_homography(scene_batch):
    """Pure rotation has no baseline to triangulate; the homography (its rigid explanation) still scores the pair."""
    rigid = scene_batch[:1]
    out = DepthConsistencyReward(min_points=10_000)(rigid, [""])
    assert out["degenerate"][0] == 0 and out["score"][0] > 0.3, out
    assert out["explained"][0] == out["homography"][0] and out["depth_agreement"][0] == 0
