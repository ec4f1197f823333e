"""`python -m world_r1 camera`: the camera path a prompt gets, one JSON line per prompt, as rollouts and rewards use
it (the release's phrases anywhere, its poses), from the command line or a prompt file."""

import contextlib
import io
import json
import math

import pytest

from tests.helpers import run_in_process


def camera_lines(*args: str) -> list[dict]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_in_process("camera", *args) is None
    return [json.loads(line) for line in printed.getvalue().splitlines()]


def test_prompts_on_the_command_line_and_in_a_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "A hall.", "camera": "tilt up"}) + "\n")
    lines = camera_lines("Camera orbit left. A hall.", "A tower at dusk, camera push in, then fixed.", "--frames", "9")
    lines += camera_lines("--prompts", str(path), "--frames", "5")
    assert [line["movements"] for line in lines] == [["orbit left"], ["push in", "fixed"], ["tilt up"]]
    orbit = lines[0]["poses"]
    assert len(orbit) == 9 and all(len(p) == 4 and len(p[0]) == 4 for p in orbit)
    # camera-to-world, OpenCV axes, the release's units: orbit left ends turned left, moved right and back
    end = orbit[-1]
    assert end[0][3] == pytest.approx(600 * math.sin(math.radians(24)), abs=1e-3) and end[2][3] < 0
    assert end[0][2] == pytest.approx(-math.sin(math.radians(24)), abs=1e-6)
    assert lines[1]["poses"][-1][2][3] == pytest.approx(600.0)
    assert len(lines[2]["poses"]) == 5


def test_a_prompt_without_camera_words_has_no_movement_and_bad_input_names_the_fix():
    (line,) = camera_lines("A red barn in a field.", "--frames", "3")
    assert line["movements"] == [] and line["poses"][2] == [
        [1.0, 0, 0, 0],
        [0, 1.0, 0, 0],
        [0, 0, 1.0, 0],
        [0, 0, 0, 1.0],
    ]
    assert "Give prompts" in str(run_in_process("camera"))
    assert "--frames must be >= 1" in str(run_in_process("camera", "Camera pan left.", "--frames", "0"))
