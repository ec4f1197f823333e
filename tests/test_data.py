"""Prompt files, the built-in sets, group sampling across processes, and the decoupled-phase schedule."""

import json
from collections import Counter

import pytest

from world_r1.data import GroupBatchSampler, PhaseSchedule, PromptDataModule, load_prompts
from world_r1.prompts import builtin_prompt_file


def test_txt_skips_blanks_and_comments(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# header\nCamera pan left. A barn.\n\n  Camera fixed. A hall.  \n")
    records = load_prompts(path)
    assert [r.text for r in records] == ["Camera pan left. A barn.", "Camera fixed. A hall."]
    assert [r.id for r in records] == [0, 1] and records[0].camera is None


def test_jsonl_with_explicit_camera(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "A barn.", "camera": "pan left"}) + "\n" + json.dumps({"prompt": "A hall."}))
    records = load_prompts(path)
    assert records[0].camera == "pan left" and records[1].camera is None


@pytest.mark.parametrize(
    ("name", "content", "error", "match"),
    [
        ("empty.txt", "# only a comment\n\n", ValueError, "holds no prompts"),
        ("bad.jsonl", '{"prompt": "ok"}\n{"text": "no prompt key"}\n', ValueError, r"bad\.jsonl:2"),
        ("bad.jsonl", '{"prompt": "ok"}\nnot json\n', ValueError, r"bad\.jsonl:2"),
        ("prompts.csv", "a,b\n", ValueError, r"\.txt"),
    ],
)
def test_bad_prompt_files(tmp_path, name, content, error, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(error, match=match):
        load_prompts(path)


def test_missing_prompt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="builtin:train"):
        load_prompts(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="train"):
        builtin_prompt_file("nope")


def test_builtin_sets():
    train, dynamic, evaluation = (load_prompts(f"builtin:{n}") for n in ("train", "dynamic", "eval"))
    assert len(train) >= 200 and len(dynamic) >= 50 and len(evaluation) >= 32
    for record in train + evaluation:
        assert record.text.startswith("Camera "), record.text
    assert not {r.text.split(". ", 1)[1] for r in train} & {r.text.split(". ", 1)[1] for r in evaluation}
    assert len({r.text for r in train}) == len(train)


def _sampler(**kwargs) -> GroupBatchSampler:
    defaults = {"set_sizes": {"main": 10, "decoupled": 4}, "group_size": 4, "prompts_per_step": 3}
    defaults["schedule"] = PhaseSchedule(main_steps=3, decoupled_steps=2)
    return GroupBatchSampler(**(defaults | kwargs))


def _take(sampler, n):
    iterator = iter(sampler)
    return [next(iterator) for _ in range(n)]


def test_deterministic_and_resumable():
    assert _take(_sampler(seed=5), 6) == _take(_sampler(seed=5), 6)
    assert _take(_sampler(seed=5), 6) != _take(_sampler(seed=6), 6)
    assert _take(_sampler(seed=5, start_step=4), 2) == _take(_sampler(seed=5), 6)[4:]


def test_ranks_split_each_step_and_keep_groups_whole():
    whole = _take(_sampler(), 5)
    ranks = [_take(_sampler(rank=r, world_size=3), 5) for r in range(3)]
    for step in range(5):
        merged = [item for r in range(3) for item in ranks[r][step]]
        assert merged == whole[step]
        assert all(len(ranks[r][step]) == 4 for r in range(3))
        groups = Counter(group for _, _, _, group, _ in merged)
        assert set(groups.values()) == {4}
        assert len({sample for *_, sample in merged}) == 12
    assert len({group for step in whole for *_, group, _ in step}) == 15  # unique across steps


def test_uneven_split_is_rejected():
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        _sampler(world_size=5)


def test_every_prompt_before_any_repeat():
    sampler = _sampler(schedule=PhaseSchedule(main_steps=100), prompts_per_step=5)
    drawn = [sampler.prompts_of_step(s)[1] for s in range(4)]
    assert sorted(drawn[0] + drawn[1]) == list(range(10))
    assert sorted(drawn[2] + drawn[3]) == list(range(10))
    assert drawn[:2] != drawn[2:]  # reshuffled per pass


def test_phase_schedule():
    schedule = PhaseSchedule(main_steps=3, decoupled_steps=2)
    assert [schedule.phase(s) for s in range(7)] == ["main"] * 3 + ["decoupled"] * 2 + ["main"] * 2
    assert [schedule.local_step(s) for s in range(8)] == [0, 1, 2, 0, 1, 3, 4, 5]
    assert _take(_sampler(), 4)[3][0][0] == "decoupled"
    assert PhaseSchedule(main_steps=5).phase(1000) == "main"


def test_datamodule_batches():
    data = PromptDataModule(group_size=2, prompts_per_step=3, decoupled_steps=1, main_steps=2)
    batches = _take(data.train_dataloader(), 3)
    first = batches[0]
    assert len(first["prompts"]) == 6 and first["phase"] == "main" and first["step"] == 0
    assert first["group_ids"].tolist() == [0, 0, 1, 1, 2, 2]
    assert first["sample_ids"].tolist() == list(range(6))
    assert first["prompts"][0] == first["prompts"][1]
    assert batches[2]["phase"] == "decoupled"
    eval_batch = next(iter(data.val_dataloader()))
    assert len(eval_batch["prompts"]) == 3


def test_decoupled_needs_prompts():
    with pytest.raises(ValueError, match="decoupled_prompts"):
        PromptDataModule(decoupled_prompts=None, decoupled_steps=5)


def _picture(path, size=(64, 48)):
    from PIL import Image

    Image.new("RGB", size, (200, 40, 40)).save(path)
    return path


def test_jsonl_images_resolve_against_the_prompt_file_and_reach_the_batches(tmp_path):
    (tmp_path / "frames").mkdir()
    _picture(tmp_path / "frames" / "barn.png")
    absolute = _picture(tmp_path / "canyon.png")
    file = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "Camera pan left. A barn.", "image": "frames/barn.png"},
        {"prompt": "A canyon.", "image": str(absolute)},
    ]
    file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    records = load_prompts(file)
    assert [r.image for r in records] == [str(tmp_path / "frames" / "barn.png"), str(absolute)]
    assert records[1].where == f"{file}:2"
    data = PromptDataModule(
        train_prompts=str(file), decoupled_prompts=None, eval_prompts=str(file), group_size=2, prompts_per_step=2
    )
    batch = next(iter(data.train_dataloader()))
    assert sorted(batch["images"]) == sorted([r.image for r in records for _ in range(2)])
    assert next(iter(data.eval_dataloader(0, 1, 2)))["images"] == [r.image for r in records]
    data.check_images(48, 64, takes_images=True, needs_images=True)  # 4:3 pictures for 64x48 videos


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ("missing.png", r"prompts.jsonl:2: \"image\": Image .*missing.png not found"),
        ("notes.png", r"prompts.jsonl:2: \"image\": Image .*notes.png cannot be read"),
    ],
)
def test_a_missing_or_unreadable_image_names_the_prompt_line(tmp_path, image, match):
    (tmp_path / "notes.png").write_text("not a picture")
    _picture(tmp_path / "ok.png")
    lines = [{"prompt": "A barn.", "image": "ok.png"}, {"prompt": "A canyon.", "image": image}]
    (tmp_path / "prompts.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    with pytest.raises(ValueError, match=match):
        load_prompts(tmp_path / "prompts.jsonl")


def test_images_that_do_not_suit_the_model_or_the_video_name_the_prompt_line(tmp_path):
    _picture(tmp_path / "square.png", size=(64, 64))
    file = tmp_path / "prompts.jsonl"
    file.write_text(json.dumps({"prompt": "A barn.", "image": "square.png"}) + "\n")
    data = PromptDataModule(train_prompts=str(file), decoupled_prompts=None, eval_prompts=str(file))
    with pytest.raises(
        ValueError, match=r"prompts.jsonl:1: image .*square.png is 64x64 \(aspect 1.00\) but the videos are 832x480"
    ):
        data.check_images(480, 832, takes_images=True, needs_images=False)
    with pytest.raises(ValueError, match=r"prompts.jsonl:1: the prompt has an image but this Wan is text-to-video"):
        data.check_images(64, 64, takes_images=False, needs_images=False)
    text = tmp_path / "prompts.txt"
    text.write_text("A barn.\n")
    plain = PromptDataModule(train_prompts=str(text), decoupled_prompts=None, eval_prompts=str(text))
    with pytest.raises(ValueError, match=r"prompts.txt:1: this image-to-video Wan needs an image for every prompt"):
        plain.check_images(64, 64, takes_images=True, needs_images=True)
