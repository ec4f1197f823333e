"""The learned terms, loaded from tiny random models saved to disk through the real loading code: CLIP quality and
the Depth Anything depth source."""

import pytest
import torch

from world_r1.geometry.depth_model import ModelDepth
from world_r1.rewards import DepthConsistencyReward, QualityReward
from world_r1.synthetic import rigid_video


def test_quality_reward_scores_text_video_agreement(tiny_clip):
    reward = QualityReward(tiny_clip, num_frames=3)
    videos = torch.rand(3, 5, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    out = reward(videos, ["a red car", "a blue sea", "a red car"])
    assert set(out) == {"score", "clip_cosine", "degenerate"}
    assert ((out["score"] >= 0) & (out["score"] <= 1)).all() and (out["clip_cosine"].abs() <= 1).all()
    torch.testing.assert_close(out["score"], (2.5 * out["clip_cosine"]).clamp(0, 1))
    # the cosine is the mean over frames of CLIP's own image-text cosine
    single = reward(videos[:1, [0]], ["a red car"])["clip_cosine"]
    inputs = reward.tokenizer(["a red car"], return_tensors="pt")
    expected = reward.model(**inputs, pixel_values=reward.preprocess(videos[0, [0]]))
    cosine = torch.nn.functional.cosine_similarity(expected.image_embeds, expected.text_embeds)
    torch.testing.assert_close(single, cosine, atol=1e-5, rtol=1e-4)
    assert reward.preprocess(videos[0]).shape == (5, 3, 32, 32)
    assert not torch.allclose(out["clip_cosine"][0], out["clip_cosine"][1])  # prompts matter
    with pytest.raises(ValueError, match="prompts"):
        reward(videos, ["one prompt"])


def test_model_depth_loads_resizes_to_patches_and_fits_anchors(tiny_depth_anything):
    source = ModelDepth(tiny_depth_anything, input_size=60)
    assert source.patch == 14 and source.input_shape(96, 128) == (42, 56)
    frames = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    raw = source.predict(frames)
    assert raw.shape == (2, 1, 96, 128)
    points = torch.rand(30, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([127.0, 95.0])
    depth = source(frames, [points, points], [torch.full((30,), 2.0), torch.linspace(1.0, 4.0, 30)])
    assert depth.shape == (2, 1, 96, 128) and torch.isfinite(depth).all() and (depth > 0).all()
    torch.testing.assert_close(depth[0], torch.full_like(depth[0], 2.0))  # constant anchors: constant depth
    with pytest.raises(ValueError, match="anchors"):
        source(frames, [points[:3], points[:3]], [torch.ones(3), torch.ones(3)])
    with pytest.raises(ValueError, match="output"):
        ModelDepth(tiny_depth_anything, output="disparity")


def test_depth_reward_with_a_model_depth_source(tiny_depth_anything):
    reward = DepthConsistencyReward(depth=ModelDepth(tiny_depth_anything, input_size=56))
    video = rigid_video(9, 96, 96, seed=0).video[None]
    out = reward(video, [""])
    assert all(torch.isfinite(v).all() for v in out.values())
    assert out["degenerate"][0] == 0 and out["psnr"][0] > 10  # a random model still warps a sensible frame
