"""S_meta: the vision-language critic of novel views, with tiny Qwen2.5-VL models saved offline (one that answers "7",
one that answers junk) for the parsed scoring and tiny Qwen3-VL models (random, or '7' dominant) for the release's
expected digit, through the real loading code, alone and inside the composite reward."""

import pytest
import torch

from tests.rewards.tiny_models import save_tiny_clip
from world_r1.geometry import VideoGeometry, analyse
from world_r1.rewards import NovelViewReward, WeightedReward
from world_r1.rewards.novel_view import RELEASE_RUBRIC, RUBRIC
from world_r1.rewards.vlm import VisionLanguageJudge, parse_score
from world_r1.synthetic.photos import PhotoClipSpec, render_photo_clip


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("7", 7.0),
        (" 8\n", 8.0),
        ("Score: 6", 6.0),
        ("I would rate it 4/9.", 4.0),
        ("3 out of 9, the left side smears", 3.0),
        ("Rating - 5.5", 5.5),
        ("The scene has 2 cards; score 7", 7.0),
        ("10", None),
        ("8/10", None),
        ("I cannot rate this image.", None),
        ("", None),
        ("\x01\x02", None),
    ],
)
def test_parse_score_reads_ratings_and_refuses_to_guess(answer, expected):
    assert parse_score(answer, top=9) == expected


@pytest.fixture(scope="module")
def rigid_clip() -> torch.Tensor:
    """(1, 9, 3, 96, 128): a rigid photograph scene under a trucking camera."""
    spec = PhotoClipSpec(("chelsea", "coins", "rocket"), "Camera trucks left.", num_frames=9, size=(96, 128), seed=3)
    return render_photo_clip(spec).video[None]


@pytest.fixture(scope="module")
def rigid_analysis(rigid_clip) -> VideoGeometry:
    """The geometry core's analysis of ``rigid_clip`` with the default settings, made once for the tests below."""
    return analyse(rigid_clip)


def test_the_judge_answers_each_image(tiny_vlm):
    judge = VisionLanguageJudge(tiny_vlm, max_new_tokens=1, dtype="fp32")
    answers = judge(torch.rand(3, 3, 40, 56), "Rate this view from 0 to 9.")
    assert answers == ["7", "7", "7"]
    assert judge(torch.rand(0, 3, 40, 56), "Rate.") == []


def test_the_critic_scores_a_rigid_video_by_the_models_rating(tiny_vlm, rigid_clip):
    reward = NovelViewReward(tiny_vlm, scoring="parsed", max_new_tokens=1, dtype="fp32")
    out = reward(rigid_clip, ["Camera trucks left."])
    assert out["degenerate"].tolist() == [0.0]
    assert out["score"].item() == pytest.approx(7 / 9)
    assert out["rating"].item() == 7.0 and out["answered"].item() == 1.0
    assert out["coverage"].item() > 0.5 and out["parallax_px"].item() > 2.0


def test_an_answer_without_a_rating_is_the_worst_score_not_a_crash(tiny_vlm_junk, rigid_clip):
    reward = NovelViewReward(tiny_vlm_junk, scoring="parsed", max_new_tokens=4, dtype="fp32")
    out = reward(rigid_clip, ["Camera trucks left."])
    assert out["score"].tolist() == [0.0] and out["degenerate"].tolist() == [1.0] and out["answered"].tolist() == [0.0]
    assert out["coverage"].item() > 0.5  # the view was rendered and shown; only the answer failed


def test_a_video_without_a_reconstruction_is_degenerate_and_the_others_still_scored(tiny_vlm, rigid_clip):
    frozen = rigid_clip[:, :1].expand_as(rigid_clip)
    black = torch.zeros_like(rigid_clip)
    out = NovelViewReward(tiny_vlm, scoring="parsed", max_new_tokens=1, dtype="fp32")(
        torch.cat([frozen, rigid_clip, black]), ["a", "b", "c"]
    )
    assert out["degenerate"].tolist() == [1.0, 0.0, 1.0]
    assert out["score"].tolist() == pytest.approx([0.0, 7 / 9, 0.0])
    assert all(torch.isfinite(value).all() for value in out.values())


def test_the_critic_is_a_term_of_the_composite_reward(tiny_vlm, rigid_clip):
    composite = WeightedReward(
        {"meta": NovelViewReward(tiny_vlm, scoring="parsed", max_new_tokens=1, dtype="fp32")}, weights={"meta": 1.0}
    )
    out = composite(rigid_clip, ["Camera trucks left."])
    assert out["total"].item() == pytest.approx(7 / 9)
    assert out["meta"].item() == pytest.approx(7 / 9) and out["meta/rating"].item() == 7.0


def test_bad_models_fail_at_start_up_with_a_message(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Qwen/Qwen3-VL-4B-Instruct"):
        NovelViewReward(str(tmp_path / "missing"))
    clip = save_tiny_clip(tmp_path / "clip")
    with pytest.raises(ValueError, match="image-text-to-text"):
        NovelViewReward(str(clip))
    with pytest.raises(ValueError, match="rubric"):
        NovelViewReward(str(clip), question="  ")


def test_the_release_scoring_rates_by_the_expected_digit(tiny_qwen3_vl_seven, rigid_clip, rigid_analysis):
    reward = NovelViewReward(tiny_qwen3_vl_seven, max_pixels=64 * 64, dtype="fp32")
    assert reward.scoring == "expectation" and reward.question == RELEASE_RUBRIC
    out = reward(rigid_clip, ["Camera trucks left."], analysis=rigid_analysis)
    assert out["degenerate"].tolist() == [0.0] and out["answered"].tolist() == [1.0]
    assert out["rating"].item() == pytest.approx(7.0, abs=1e-3)
    assert out["score"].item() == pytest.approx(out["rating"].item() / 9, rel=1e-6)
    assert out["coverage"].item() > 0.5


def test_the_expectation_reads_an_answer_a_parser_cannot(tiny_vlm_junk, rigid_clip, rigid_analysis):
    out = NovelViewReward(tiny_vlm_junk, dtype="fp32")(rigid_clip, ["Camera trucks left."], analysis=rigid_analysis)
    assert out["rating"].tolist() == pytest.approx([4.5]) and out["score"].tolist() == pytest.approx([0.5])
    assert out["degenerate"].tolist() == [0.0] and out["answered"].tolist() == [1.0]


def test_given_renders_are_rated_with_the_configured_scoring(tiny_qwen3_vl, tiny_vlm_junk):
    views = torch.rand(3, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    reward = NovelViewReward(tiny_qwen3_vl, max_pixels=64 * 64, dtype="fp32")
    rated = reward.rate_views(views)
    assert rated["rating"].tolist() == pytest.approx(reward.judge.digit_expectation(views, RELEASE_RUBRIC).tolist())
    assert rated["score"].tolist() == pytest.approx((rated["rating"] / 9).tolist())
    assert rated["answered"].tolist() == [1.0] * 3 and rated["degenerate"].tolist() == [0.0] * 3
    parsed = NovelViewReward(tiny_vlm_junk, question=RUBRIC, scoring="parsed", max_new_tokens=2, dtype="fp32")
    rated = {key: value.tolist() for key, value in parsed.rate_views(views).items()}
    assert rated == {"rating": [0.0] * 3, "score": [0.0] * 3, "answered": [0.0] * 3, "degenerate": [1.0] * 3}
    assert all(value.shape == (0,) for value in reward.rate_views(views[:0]).values())
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        reward.rate_views(views[0])


def test_an_unknown_scoring_is_refused_before_loading(tmp_path):
    with pytest.raises(ValueError, match=r"one of \('expectation', 'parsed'\), got 'mean'"):
        NovelViewReward(str(tmp_path / "missing"), scoring="mean")


def test_the_release_rubric_states_its_criteria_in_order():
    order = ["expert in 3D", "dense, clean and complete", "smooth orbital parallax", "sparse or flat", "pan or zoom"]
    order += ["jitter or inconsistency", "static or chaotic", "single digit"]
    positions = [RELEASE_RUBRIC.find(phrase) for phrase in order]
    assert -1 not in positions and positions == sorted(positions)
