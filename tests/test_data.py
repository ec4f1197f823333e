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
