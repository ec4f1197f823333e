"""Reward terms as metrics: flat names, failure handling, zero-weight padding, prompt sharding, and the means synced
across two processes by torchmetrics (gloo)."""

import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from world_r1.callbacks import ConsistencyEvaluation
from world_r1.data import PromptDataModule
from world_r1.metrics import RewardTermMeans, score_terms
from world_r1.rewards import BrightnessReward, Reward


class Broken(Reward):
    def forward(self, videos, prompts):
        raise RuntimeError("broken on purpose")


class NotFinite(Reward):
    def forward(self, videos, prompts):
        return {"score": torch.tensor([0.5, float("nan")]), "extra": torch.tensor([1.0, 2.0])}


def test_score_terms_flattens_and_contains_failures():
    videos = torch.stack([torch.full((3, 3, 8, 8), 0.25), torch.full((3, 3, 8, 8), 0.75)])
    values = score_terms(
        {"bright": BrightnessReward(), "broken": Broken(), "nan": NotFinite()},
        videos,
        ["a", "b"],
        known={"broken": ["score", "degenerate", "inliers"]},
    )
    torch.testing.assert_close(values["bright/brightness"], torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(values["broken/score"], torch.zeros(2))  # a failing term scores worst, not NaN
    torch.testing.assert_close(values["broken/degenerate"], torch.ones(2))
    assert torch.isnan(values["broken/inliers"]).all()  # known raw terms: no value, left out of the means
    torch.testing.assert_close(values["nan/score"], torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(values["nan/degenerate"], torch.tensor([0.0, 1.0]))


def test_means_skip_padding_and_nan():
    means = RewardTermMeans()
    means.update({"a/score": torch.tensor([1.0, 3.0]), "a/raw": torch.tensor([2.0, float("nan")])})
    means.update({"a/score": torch.tensor([5.0, 100.0]), "a/raw": torch.tensor([4.0, 0.0])}, torch.tensor([1.0, 0.0]))
    assert means.compute() == {"a/score": pytest.approx(3.0), "a/raw": pytest.approx(3.0)}
    means.reset()
    assert means.keys() == [] and means.compute() == {}


def test_prompts_are_sharded_with_zero_weight_padding_for_fit_and_validate_alike(tmp_path):
    prompts = tmp_path / "eval.txt"
    prompts.write_text("prompt 0\nprompt 1\nprompt 2\n")
    data = PromptDataModule(
        train_prompts=str(prompts), decoupled_prompts=None, eval_prompts=str(prompts), prompts_per_step=2
    )
    for rank, expected, weights in (
        (0, ["prompt 0", "prompt 2"], [1.0, 1.0]),
        (1, ["prompt 1", "prompt 0"], [1.0, 0.0]),
    ):
        trainer = SimpleNamespace(
            datamodule=data,
            global_rank=rank,
            world_size=2,
            _accelerator_connector=SimpleNamespace(use_distributed_sampler=False),
        )
        fit_batches = list(ConsistencyEvaluation(batch_size=2)._batches(trainer))  # fit-time evaluation
        data.trainer = trainer
        validate_batches = list(data.val_dataloader())  # Lightning's validate/test loops
        for batches in (fit_batches, validate_batches):
            assert [b["prompts"] for b in batches] == [expected]  # a weight-0 pad: the same batches everywhere
            assert batches[0]["weights"].tolist() == weights


def _worker(rank: int, port: int, results: dict) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        means = RewardTermMeans()
        if rank == 0:  # three videos here, one (plus a zero-weight pad) there: the mean is over the four
            means.update({"t/score": torch.tensor([0.0, 1.0, 2.0])})
        else:
            means.update({"t/score": torch.tensor([6.0, 50.0])}, torch.tensor([1.0, 0.0]))
        results[rank] = means.compute()["t/score"]
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_means_are_synced_across_processes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(port, results), nprocs=2, join=True)
    assert dict(results) == {0: pytest.approx(2.25), 1: pytest.approx(2.25)}


def test_a_run_stopped_early_is_not_evaluated_on_its_way_out():
    """SIGTERM / Ctrl-C set ``should_stop``: the grace period goes to the checkpoint, not to rendering videos."""
    from types import SimpleNamespace

    evaluation = ConsistencyEvaluation(every_n_steps=5)
    calls = []
    evaluation.evaluate = lambda trainer, module: calls.append(module.steps_done) or {}
    evaluation.on_train_end(SimpleNamespace(should_stop=True), SimpleNamespace(steps_done=3))
    assert calls == []
    evaluation.on_train_end(SimpleNamespace(should_stop=False), SimpleNamespace(steps_done=3))
    assert calls == [3]
