"""The learned terms, loaded from tiny random models saved to disk through the real loading code: CLIP quality and
the Depth Anything depth source."""

import pytest
import torch

from world_r1.geometry.depth_model import ModelDepth
from world_r1.rewards import DepthConsistencyReward, PreferenceReward, QualityReward
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


def test_model_depth_names_the_fix_for_a_missing_or_wrong_model(tmp_path, tiny_clip):
    with pytest.raises(FileNotFoundError, match=r"depth model .*not found.*Depth-Anything"):
        ModelDepth(str(tmp_path / "no-such-model"))
    with pytest.raises(ValueError, match="'clip' model, not a depth-estimation model"):
        ModelDepth(tiny_clip)


def test_depth_reward_with_a_model_depth_source(tiny_depth_anything):
    reward = DepthConsistencyReward(depth=ModelDepth(tiny_depth_anything, input_size=56))
    video = rigid_video(9, 96, 96, seed=0).video[None]
    out = reward(video, [""])
    assert all(torch.isfinite(v).all() for v in out.values())
    assert out["degenerate"][0] == 0 and out["psnr"][0] > 10  # a random model still warps a sensible frame


def test_preference_reward_scores_one_frame_random_in_training_and_the_middle_one_otherwise(tiny_clip):
    reward = PreferenceReward(tiny_clip, tokenizer=None, normalizer=2.0, dtype="fp32", seed=3)
    videos = torch.rand(4, 7, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    prompts = ["a red car", "a blue sea", "a red car", "a dog"]
    held_out = reward(videos, prompts)
    assert held_out["frame"].tolist() == [3.0] * 4, "no step: the middle frame, so evaluations repeat"
    # the logit is the model's own: logit_scale * cosine of the chosen frame and the prompt
    out = reward.model(
        **reward.tokenizer(["a dog"], return_tensors="pt"), pixel_values=reward.preprocess(videos[3, [3]])
    )
    torch.testing.assert_close(held_out["logit"][3], out.logits_per_image[0, 0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(held_out["score"], (held_out["logit"] / 2.0).clamp(0, 1))
    steps = [reward(videos, prompts, step=s)["frame"] for s in range(6)]
    assert torch.equal(steps[2], reward(videos, prompts, step=2)["frame"]), "seeded by the step"
    assert len({tuple(f.tolist()) for f in steps}) > 1 and all(((f >= 0) & (f < 7)).all() for f in steps)


def test_preference_reward_gets_the_step_through_the_module(tiny_wan_dir, tiny_clip, tmp_path):
    from tests.helpers import StepOutputs, bare_trainer
    from world_r1.data import PromptDataModule
    from world_r1.grpo import SamplingConfig
    from world_r1.module import WorldR1
    from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec
    from world_r1.rewards import WeightedReward

    reward = PreferenceReward(tiny_clip, tokenizer=None, dtype="fp32")
    module = WorldR1(
        policy=PolicyConfig(model=tiny_wan_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=32),
        video=VideoSpec(32, 32, 5),
        sampling=SamplingConfig(train_steps=2, eval_steps=2, sde_window=1, sde_window_max_start=1),
        reward=WeightedReward({"preference": reward}),
    )
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Camera pan left. A barn.\n")
    steps = StepOutputs()
    data = PromptDataModule(train_prompts=str(prompts), decoupled_prompts=None, group_size=4, prompts_per_step=1)
    bare_trainer(2, default_root_dir=tmp_path, callbacks=[steps]).fit(module, data)
    for step, outputs in enumerate(steps.outputs):
        assert torch.equal(outputs["rewards"]["preference/frame"].long(), reward.frames(4, 5, step))


def test_preference_and_quality_models_fail_at_start_up_with_a_message(tmp_path, tiny_depth_anything):
    with pytest.raises(FileNotFoundError, match=r"CLIP model .* not found"):
        PreferenceReward(str(tmp_path / "missing"), tokenizer=None)
    with pytest.raises(ValueError, match="needs a CLIP-style"):
        QualityReward(tiny_depth_anything)
