"""Two real processes (DDP over gloo, CPU) with every group of G samples split across them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from world_r1.grpo.advantages import group_advantages

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run_worker(model_dir: str, out: Path, strategy: str, step: str = "sde", devices: int = 2) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    done = subprocess.run(
        [sys.executable, str(WORKER), model_dir, str(out), strategy, step, str(devices)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(devices)]


@pytest.mark.slow
def test_ddp_groups_span_processes_and_weights_stay_identical(tiny_wan_dir, tmp_path):
    ranks = _run_worker(tiny_wan_dir, tmp_path, "ddp")
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 3
    for step0, step1 in zip(ranks[0]["steps"], ranks[1]["steps"], strict=True):
        # the two processes hold distinct samples of the same group
        assert set(step0["sample_ids"].tolist()).isdisjoint(step1["sample_ids"].tolist())
        assert step0["group_ids"].unique().tolist() == step1["group_ids"].unique().tolist()
        # advantages equal those computed in one process over the whole group's rewards
        rewards = torch.cat([step0["rewards"], step1["rewards"]])
        expected = group_advantages(rewards, torch.cat([step0["group_ids"], step1["group_ids"]])).values
        torch.testing.assert_close(torch.cat([step0["advantages"], step1["advantages"]]), expected)
        assert expected.abs().sum() > 0  # the rewards differ, so the check has something to compare
    lora0, lora1 = ranks[0]["lora"], ranks[1]["lora"]
    assert lora0.keys() == lora1.keys()
    for name in lora0:
        torch.testing.assert_close(lora0[name], lora1[name], rtol=0, atol=0)
    assert any(v.abs().sum() > 0 for k, v in lora0.items() if "lora_B" in k)  # training moved the adapter


@pytest.mark.slow
def test_the_release_step_on_two_processes_equals_one_process(tiny_wan_dir, tmp_path):
    """World-R1's UniPC step is deterministic given the seeds: two processes sharing each step's samples (their
    advantages over the groups gathered from both, their gradients averaged) train exactly the LoRA one process does."""
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    two = _run_worker(tiny_wan_dir, tmp_path / "two", "ddp", "release", devices=2)
    (one,) = _run_worker(tiny_wan_dir, tmp_path / "one", "auto", "release", devices=1)
    for s1, s2a, s2b in zip(one["steps"], two[0]["steps"], two[1]["steps"], strict=True):
        torch.testing.assert_close(torch.cat([s2a["rewards"], s2b["rewards"]]), s1["rewards"], rtol=0, atol=1e-6)
        torch.testing.assert_close(
            torch.cat([s2a["advantages"], s2b["advantages"]]), s1["advantages"], atol=1e-5, rtol=0
        )
        assert s1["advantages"].abs().sum() > 0
    for name, value in one["lora"].items():
        torch.testing.assert_close(two[0]["lora"][name], value, rtol=1e-4, atol=1e-6)
    assert any(v.abs().sum() > 0 for k, v in one["lora"].items() if "lora_B" in k)  # training moved the adapter
