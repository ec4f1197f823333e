"""A clean console: the third-party notices world_r1.console drops are gone, through the libraries' real code paths,
while other lines of the same loggers and warnings of the same modules still show."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator

import lightning as L
import pytest
from diffusers import DiffusionPipeline
from diffusers.utils import logging as diffusers_logging
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from tqdm import auto as tqdm_auto
from transformers.utils import logging as transformers_logging

from tests.helpers import ROOT, run_world_r1
from world_r1.console import delay_loading_bars, quiet_third_party_noise

TORCHVISION_NOTICE = (
    "`CLIPImageProcessor` requires torchvision (not installed); falling back to `CLIPImageProcessorPil` for backward "
    "compatibility. Install torchvision to use the default backend, or import `CLIPImageProcessorPil` directly to "
    "silence this warning."
)
LEAFSPEC = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and treespec.is_leaf()`"


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def logged(monkeypatch) -> Iterator[list[str]]:
    """What the loggers of transformers and Lightning pass on (Lightning's do not propagate to the root logger)."""
    recorder = _Recorder()
    loggers = [logging.getLogger(name) for name in ("transformers", "lightning.pytorch", "lightning.fabric")]
    for logger in loggers:
        logger.addHandler(recorder)
        monkeypatch.setattr(logger, "level", logging.INFO)
    quiet_third_party_noise()
    yield recorder.messages
    for logger in loggers:
        logger.removeHandler(recorder)


def test_transformers_torchvision_notice_is_dropped_other_warnings_of_its_logger_are_not(logged):
    logger = transformers_logging.get_logger("transformers.utils.import_utils")  # where the notice is logged
    logger.warning(TORCHVISION_NOTICE)
    logger.warning("`Foo` requires bar (not installed).")
    assert logged == ["`Foo` requires bar (not installed)."]


def test_lightning_tip_device_lines_and_seed_are_dropped_other_info_is_not(logged, tmp_path):
    L.seed_everything(0)
    L.Trainer(accelerator="cpu", logger=TensorBoardLogger(tmp_path), limit_val_batches=1.0, enable_progress_bar=False)
    rank_zero_info("A line of the run.")
    assert logged == ["A line of the run."]


def test_the_unfiltered_loggers_do_show_those_lines(tmp_path):
    """The check above can fail: without the filters Trainer() and seed_everything log what they were said to."""
    recorder = _Recorder()
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
    loggers = [logging.getLogger(name) for name in (*names, "lightning.fabric.utilities.seed")]
    saved = [logger.filters[:] for logger in loggers]
    for logger in loggers:
        logger.filters.clear()
    logging.getLogger("lightning.pytorch").addHandler(recorder)
    logging.getLogger("lightning.fabric").addHandler(recorder)
    try:
        L.seed_everything(0)
        L.Trainer(accelerator="cpu", logger=TensorBoardLogger(tmp_path), limit_val_batches=1.0)
    finally:
        for logger, filters in zip(loggers, saved, strict=True):
            logger.filters[:] = filters
        logging.getLogger("lightning.pytorch").removeHandler(recorder)
        logging.getLogger("lightning.fabric").removeHandler(recorder)
    text = "\n".join(recorder.messages)
    for line in ("Seed set to 0", "GPU available: ", "TPU available: ", "Tip: For seamless cloud logging", "100%"):
        assert line in text, line


def test_pytree_deprecation_is_ignored_only_from_lightning():
    from lightning.pytorch.utilities._pytree import _tree_flatten  # the Lightning call that warns

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party_noise()
        _tree_flatten(1)
        module = "lightning.pytorch.utilities._pytree"
        warnings.warn_explicit("another change", FutureWarning, "_pytree.py", 1, module=module)
        warnings.warn_explicit(LEAFSPEC, FutureWarning, "mine.py", 1, module="my_code")  # a user's own call
    assert [(str(w.message), w.filename) for w in caught] == [("another change", "_pytree.py"), (LEAFSPEC, "mine.py")]


def test_quick_loading_bars_are_hidden_slow_ones_show(tiny_wan_dir, capsys, monkeypatch):
    monkeypatch.setattr(diffusers_logging, "tqdm_lib", tqdm_auto)  # diffusers' own; restored after the test
    monkeypatch.setattr(transformers_logging, "_tqdm_hook", None)
    capsys.readouterr()
    DiffusionPipeline.from_pretrained(tiny_wan_dir)
    shown = capsys.readouterr().err
    assert "Loading pipeline components" in shown and "Loading weights" in shown  # without the delay
    delay_loading_bars(0.2)
    DiffusionPipeline.from_pretrained(tiny_wan_dir)
    assert "Loading" not in capsys.readouterr().err
    for tqdm in (diffusers_logging.tqdm, transformers_logging.tqdm):
        for _ in tqdm(range(2), desc="slow load"):
            time.sleep(0.15)
        assert "slow load" in capsys.readouterr().err


@pytest.mark.slow
def test_a_fit_prints_only_the_project_s_lines(tmp_path):
    """`python -m world_r1 fit` as a user runs it: none of the dropped lines, the project's lines and summary."""
    out = run_world_r1(
        "fit", "--config", str(ROOT / "configs" / "tiny.yaml"), "--trainer.max_steps", "1", cwd=tmp_path, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    printed = out.stdout + out.stderr
    for noise in ("torchvision", "litlogger", "LeafSpec", "Seed set", "GPU available", "TPU available", "100%", "Load"):
        assert noise not in printed, noise
    assert "Evaluation at step 0 written to" in printed and "world-r1 run summary" in out.stdout
