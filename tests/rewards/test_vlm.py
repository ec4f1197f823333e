"""The judge's expected digit (the release's S_meta score) on tiny Qwen3-VL and Qwen2.5-VL models saved offline and
loaded through the real loading code: against logits computed here by calling the model, and on models whose digit
logits are set by construction."""

import json
import shutil

import pytest
import torch

from tests.rewards.tiny_models import QWEN_CHAT_TEMPLATE, save_tiny_qwen3_vl
from world_r1.rewards.vlm import DIGITS, VisionLanguageJudge, digit_token_ids

QUESTION = "Rate this render from 0 to 9. Answer with a single digit."


def judge_of(model: str) -> VisionLanguageJudge:
    return VisionLanguageJudge(model, max_new_tokens=1, max_pixels=64 * 64, dtype="fp32")


def hand_expectation(judge: VisionLanguageJudge, image: torch.Tensor) -> float:
    """The expected digit for one image, from the model's full logits on an input built here, without the judge."""
    processed = judge.image_processor(
        images=[image.permute(1, 2, 0).numpy()],
        do_rescale=False,
        size={"shortest_edge": min(judge.min_pixels, 64 * 64), "longest_edge": 64 * 64},  # the judge's resizing
        return_tensors="pt",
    )
    grid = processed["image_grid_thw"]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = judge.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    tokens = int(grid.prod()) // judge.model.config.vision_config.spatial_merge_size**2
    text = text.replace("<|image_pad|>", "<|image_pad|>" * tokens)
    ids = judge.tokenizer(text, return_tensors="pt")["input_ids"]
    logits = judge.model(
        input_ids=ids,
        mm_token_type_ids=(ids == judge.model.config.image_token_id).int(),
        pixel_values=processed["pixel_values"],
        image_grid_thw=grid,
    ).logits[0, -1]
    probabilities = logits[judge.tokenizer.convert_tokens_to_ids(list(DIGITS))].softmax(-1)
    return float((probabilities * torch.arange(10.0)).sum())


@pytest.mark.parametrize("model", ["tiny_qwen3_vl", "tiny_vlm"])
def test_the_expectation_is_the_hand_computation_from_the_models_logits(model, request):
    judge = judge_of(request.getfixturevalue(model))
    with torch.no_grad():  # sharpen the tiny random model so the digits' distribution depends on the image
        judge.model.model.language_model.norm.weight.fill_(1.0)
        judge.model.lm_head.weight.mul_(40.0)
    images = torch.rand(3, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    expected = [hand_expectation(judge, image) for image in images]
    got = judge.digit_expectation(images, QUESTION)
    assert got.shape == (3,) and got.dtype == torch.float32
    assert got.tolist() == pytest.approx(expected, abs=1e-5)
    assert max(expected) - min(expected) > 1e-3  # the image reaches the answer position
    assert judge.digit_expectation(images[1:2], QUESTION).item() == pytest.approx(expected[1], abs=1e-5)


def test_forced_digit_logits_give_their_expectation(tiny_qwen3_vl_seven, tmp_path):
    images = torch.rand(2, 3, 40, 56)
    seven = judge_of(tiny_qwen3_vl_seven).digit_expectation(images, QUESTION)
    exact = (7 * torch.e**12 + sum(range(10)) - 7) / (torch.e**12 + 9)
    assert seven.tolist() == pytest.approx([exact, exact], abs=1e-5) and 6.999 < exact < 7
    uniform = save_tiny_qwen3_vl(tmp_path / "uniform", digit_logits=[3.0] * 10)
    assert judge_of(str(uniform)).digit_expectation(images, QUESTION).tolist() == pytest.approx([4.5, 4.5], abs=1e-5)
    ramp = [0.5 * digit for digit in range(10)]
    weights = torch.tensor(ramp).softmax(0)
    graded = save_tiny_qwen3_vl(tmp_path / "ramp", digit_logits=ramp)
    expected = float((weights * torch.arange(10.0)).sum())
    assert judge_of(str(graded)).digit_expectation(images, QUESTION).tolist() == pytest.approx([expected] * 2, abs=1e-4)


def test_the_qwen2_5_vl_with_zero_logits_is_uniform(tiny_vlm):
    assert judge_of(tiny_vlm).digit_expectation(torch.rand(2, 3, 40, 56), QUESTION).tolist() == [4.5, 4.5]


def test_qwen3_vl_answers_greedily_and_marks_its_image_tokens(tiny_qwen3_vl_seven):
    judge = judge_of(tiny_qwen3_vl_seven)
    assert judge(torch.rand(2, 3, 64, 64), QUESTION) == ["7", "7"]
    inputs = judge.inputs(torch.rand(2, 3, 64, 64), QUESTION)
    placeholders = int(inputs["image_grid_thw"][0].prod()) // 4  # 2 x 2 patches merge into one token
    assert inputs["mm_token_type_ids"].sum(1).tolist() == [placeholders, placeholders]
    assert judge.digit_expectation(torch.rand(0, 3, 64, 64), QUESTION).shape == (0,)


def test_a_thinking_template_is_refused(tiny_qwen3_vl_seven):
    judge = judge_of(tiny_qwen3_vl_seven)
    judge.tokenizer.chat_template = QWEN_CHAT_TEMPLATE.replace("assistant\n", "assistant\n<think>\n")
    assert judge.prompt(QUESTION).endswith("<think>\n")
    with pytest.raises(ValueError, match="Instruct"):
        judge.digit_expectation(torch.rand(1, 3, 64, 64), QUESTION)


def test_a_chat_template_kept_in_chat_template_json_is_found(tiny_qwen3_vl_seven, tmp_path):
    legacy = shutil.copytree(tiny_qwen3_vl_seven, tmp_path / "legacy")
    (legacy / "chat_template.jinja").unlink()
    (legacy / "chat_template.json").write_text(json.dumps({"chat_template": QWEN_CHAT_TEMPLATE}))
    assert judge_of(str(legacy)).prompt(QUESTION).endswith("<|im_start|>assistant\n")
    (legacy / "chat_template.json").unlink()
    with pytest.raises(ValueError, match="chat template"):
        judge_of(str(legacy))


def test_digits_must_be_single_tokens(tiny_qwen3_vl_seven):
    from transformers import AutoTokenizer, Qwen2Tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3_vl_seven)
    assert [tokenizer.decode([i]) for i in digit_token_ids(tokenizer)] == list(DIGITS)
    vocab = {token: index for index, token in enumerate(["a", "b", "<|endoftext|>"])}
    no_digits = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token="<|endoftext|>")
    with pytest.raises(ValueError, match=r"digits \['0', '1'"):
        digit_token_ids(no_digits)
