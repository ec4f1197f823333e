"""The camera-motion grammar: phrasings, combinations, speeds, prompt fallback and errors."""

from pathlib import Path

import pytest

from world_r1.camera import (
    FIXED,
    STATIC,
    CameraParseError,
    CameraPlan,
    Motion,
    parse_camera,
    plan_for_prompt,
    release_phrases,
)
from world_r1.camera.grammar import camera_words_table
from world_r1.prompts import builtin_prompt_file


def plan(*segments: tuple[Motion, ...]) -> CameraPlan:
    return CameraPlan(tuple(segments))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Camera pan left.", plan((Motion("pan", -1),))),
        ("pan right", plan((Motion("pan", 1),))),
        ("The camera pans right", plan((Motion("pan", 1),))),
        ("Camera tilt down slowly.", plan((Motion("tilt", -1, 0.5),))),
        ("camera slowly tilts up", plan((Motion("tilt", 1, 0.5),))),
        ("Camera push in.", plan((Motion("dolly", 1),))),
        ("push forward", plan((Motion("dolly", 1),))),
        ("Camera pull back.", plan((Motion("dolly", -1),))),
        ("pull out", plan((Motion("dolly", -1),))),
        ("dolly in quickly", plan((Motion("dolly", 1, 2.0),))),
        ("The camera dollies in.", plan((Motion("dolly", 1),))),
        ("zoom out", plan((Motion("zoom", -1),))),
        ("dolly in while zooming out", plan((Motion("dolly", 1), Motion("zoom", -1)))),
        ("truck left", plan((Motion("truck", -1),))),
        ("tracking right fast", plan((Motion("truck", 1, 2.0),))),
        ("crane up", plan((Motion("crane", 1),))),
        ("pedestal down", plan((Motion("crane", -1),))),
        ("camera rises", plan((Motion("crane", 1),))),
        ("orbit right slowly", plan((Motion("orbit", 1, 0.5),))),
        ("arcing left", plan((Motion("orbit", -1),))),
        ("move backward", plan((Motion("dolly", -1),))),
        ("moves left", plan((Motion("truck", -1),))),
        ("Camera push in, then pan right.", plan((Motion("dolly", 1),), (Motion("pan", 1),))),
        ("pull out and then crane up", plan((Motion("dolly", -1),), (Motion("crane", 1),))),
        ("truck right followed by push in", plan((Motion("truck", 1),), (Motion("dolly", 1),))),
        ("Camera push in while panning left.", plan((Motion("dolly", 1), Motion("pan", -1)))),
        ("dolly in and pan left", plan((Motion("dolly", 1), Motion("pan", -1)))),
        ("pan left while tilting up", plan((Motion("pan", -1), Motion("tilt", 1)))),
        (
            "slowly pan left while tilting up, then quickly push in",
            plan((Motion("pan", -1, 0.5), Motion("tilt", 1)), (Motion("dolly", 1, 2.0),)),
        ),
        ("Camera fixed.", FIXED),
        ("static shot", FIXED),
        ("The camera remains still", FIXED),
        ("locked-off camera", FIXED),
        ("truck left, then hold still", plan((Motion("truck", -1),), ())),
        # the release's phrases alone are read as the release reads them: each a movement, in order
        (
            "Camera move left, pull out, then pan left.",
            plan(*[(Motion(*m),) for m in (("truck", -1), ("dolly", -1))], (Motion("pan", -1),)),
        ),
        ("Camera orbit left and push in.", plan((Motion("orbit", -1),), (Motion("dolly", 1),))),
        ("Camera push in, then fixed.", plan((Motion("dolly", 1),), ())),
        ("camera fixed, push in", plan((), (Motion("dolly", 1),))),
    ],
)
def test_phrasings(text, expected):
    assert parse_camera(text) == expected


def test_describe_round_trips():
    for text in [
        "push in, then pan right",
        "pan left while tilting up quickly",
        "orbit right slowly",
        "fixed",
        "tilt up, then fixed, then zoom in slowly",
    ]:
        parsed = parse_camera(text)
        assert parse_camera(parsed.describe()) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wobble left", "unknown camera word 'wobble'"),
        ("pan up", "not 'up'"),
        ("pan", "needs a direction"),
        ("move", "needs a direction"),
        ("pan left sideways", "unexpected word 'sideways'"),
        ("pan left while panning right", "same way twice"),
        ("static pan left", "static camera"),
        ("slowly", "no camera verb"),
        ("", "empty"),
        ("Camera.", "empty"),
    ],
)
def test_errors_name_the_problem(text, message):
    with pytest.raises(CameraParseError, match=message):
        parse_camera(text)


def test_explicit_camera_overrides_text_and_must_parse():
    assert plan_for_prompt("Camera pan left. A barn.", "crane up") == plan((Motion("crane", 1),))
    with pytest.raises(CameraParseError):
        plan_for_prompt("Camera pan left. A barn.", "spin around")


def test_a_prompt_without_camera_words_has_no_camera():
    assert plan_for_prompt("Camera pan left. A barn.") == plan((Motion("pan", -1),))
    assert plan_for_prompt("A barn at dusk. The camera slowly pushes in.") == plan((Motion("dolly", 1, 0.5),))
    assert plan_for_prompt("A barn at dusk with swallows.") == STATIC  # no camera sentence
    assert plan_for_prompt("A photographer holds a camera.") == STATIC  # not a camera instruction
    assert plan_for_prompt("Camera wobbles wildly. A barn.") == STATIC  # outside the grammar, no release phrase
    assert not STATIC.has_camera and FIXED.has_camera and FIXED.is_static and STATIC.is_static


def test_the_release_phrases_count_anywhere_in_the_prompt_in_order():
    # World-R1 finds its nine phrases anywhere (whole words, every occurrence): so does a prompt here
    assert plan_for_prompt("A tower at dusk, camera push in.") == plan((Motion("dolly", 1),))
    assert plan_for_prompt("Camera pan left. Soldiers march, then move right.") == plan(
        (Motion("pan", -1),), (Motion("truck", 1),)
    )
    assert plan_for_prompt("The dancers move left. Camera tilt up slowly.") == plan(
        (Motion("truck", -1),), (Motion("tilt", 1, 0.5),)
    )
    assert plan_for_prompt("Camera wobbles, then pans left. A barn, pan right.") == plan((Motion("pan", 1),))
    assert plan_for_prompt("A pushed-in door and a panning shot.") == STATIC  # not whole phrases
    found = [p for _, p in release_phrases("Pan left, PUSH IN; pan left-ish. pull outside")]
    assert found == ["pan left", "push in", "pan left"]  # letters end a phrase, a hyphen does not (as the release)


@pytest.mark.parametrize("name", ["train", "eval", "dynamic"])
def test_every_builtin_prompt_with_a_camera_sentence_parses(name):
    lines = [line for line in builtin_prompt_file(name).read_text().splitlines() if line.startswith("Camera")]
    assert lines
    for line in lines:
        parse_camera(line.split(".")[0])  # raises on anything outside the grammar


def test_the_camera_page_prints_the_grammars_one_table_of_camera_words():
    page = (Path(__file__).resolve().parents[2] / "docs" / "camera.md").read_text(encoding="utf-8")
    table = camera_words_table()
    assert table in page, "paste world_r1.camera.grammar.camera_words_table() into docs/camera.md"
    for verb in ("pan", "zoom", "pull", "orbit", "descend"):
        assert f"| {verb}" in table or f", {verb}" in table


def test_mirrored_reverses_every_direction_and_keeps_speeds():
    chain = parse_camera("truck right quickly, then pan left and tilt up")
    assert chain.mirrored() == parse_camera("truck left quickly, then pan right and tilt down")
    assert chain.mirrored().mirrored() == chain and STATIC.mirrored() == STATIC and FIXED.mirrored() == FIXED
