"""`make demo` as a user runs it, shortened: configs/mini.yaml on the shipped mini Wan, from the command line.

The full demo (30 steps, about 5 minutes) is too long for CI; one Flow-GRPO step with smaller groups and fewer
denoising steps runs every part of it: the shipped model, the world's prompt sets, warped noise, the four 3D terms,
EMA, the LoRA export, and the held-out evaluation of the base model and of the trained one side by side.
"""

import json

import pytest

from tests.helpers import ROOT, run_world_r1

pytestmark = pytest.mark.slow  # subprocess runs, notebooks, whole-pipeline fits: `make test-fast` skips them


def test_the_demo_config_trains_the_shipped_mini_wan_and_reports_base_against_trained(tmp_path):
    args = [
        *("fit", "--config", str(ROOT / "configs" / "mini.yaml")),
        *("--trainer.max_steps", "1", "--trainer.default_root_dir", str(tmp_path / "runs")),
        *("--data.group_size", "4", "--data.num_eval_prompts", "3"),
        *("--model.sampling.train_steps", "6", "--model.sampling.eval_steps", "8"),
    ]
    out = run_world_r1(*args, cwd=tmp_path, timeout=600, env={"COLUMNS": "160"})
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "runs" / "version_0"
    reports = [json.loads(path.read_text()) for path in sorted((run / "eval").glob("fit_step_*.json"))]
    assert [report["step"] for report in reports] == [0, 1] and all(r["num_videos"] == 3 for r in reports)
    base, trained = (report["metrics"] for report in reports)
    for term in ("epipolar", "depth", "trajectory", "motion"):
        assert f"{term}/score" in base and f"{term}/score" in trained
    # the geometry core reads the shipped model's own videos: not the degenerate blobs of a random model
    assert base["epipolar/degenerate"] < 1.0 and base["epipolar/inlier_ratio"] > 0.2
    assert base != trained  # the LoRA was trained and the evaluation used it
    assert (run / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert "world-r1 run summary" in out.stdout and "(base) ->" in out.stdout
