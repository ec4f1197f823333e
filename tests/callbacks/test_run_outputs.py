"""One small in-process `fit` with every logging callback, then what a user reads back from it: TensorBoard event
files (scalars, playable videos, evaluation metrics), mp4 files, evaluation JSON, the run summary, and a `validate`
run from the checkpoint that reproduces the evaluation with the EMA weights."""

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from world_r1.callbacks import ConsistencyEvaluation, LoRAEMA, RunSummary, VideoLogger
from world_r1.checkpoint_io import CheckedCheckpointIO
from world_r1.data import PromptDataModule
from world_r1.grpo import GRPOConfig, SamplingConfig
from world_r1.metrics import score_terms
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec
from world_r1.rewards import BrightnessReward, ColorReward, WeightedReward
from world_r1.video_io import read_video

STEPS, FRAMES, SIZE = 2, 5, 32
EVAL_PROMPTS = ["Camera pan left. A red barn.", "Camera push in. A library.", "Camera fixed. A beach."]


def _terms() -> dict:
    return {"bright": BrightnessReward(), "color": ColorReward()}


def _data(root) -> PromptDataModule:
    (root / "train.txt").write_text("Camera orbit right. A statue.\nCamera fixed. A forest.\n")
    (root / "eval.txt").write_text("\n".join(EVAL_PROMPTS) + "\n")
    return PromptDataModule(
        train_prompts=str(root / "train.txt"),
        decoupled_prompts=str(root / "train.txt"),
        eval_prompts=str(root / "eval.txt"),
        group_size=2,
        prompts_per_step=1,
        main_steps=1,  # steps alternate: main (red), decoupled (bright)
        decoupled_steps=1,
    )


def _trainer(root, callbacks, **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=TensorBoardLogger(root, name="run"),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=root,
        plugins=[CheckedCheckpointIO()],  # as the CLI
        **kwargs,
    )


@pytest.fixture(scope="module")
def run(tiny_wan_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    module = WorldR1(
        policy=PolicyConfig(model=tiny_wan_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=32),
        video=VideoSpec(SIZE, SIZE, FRAMES, fps=8),
        sampling=SamplingConfig(train_steps=4, eval_steps=4, sde_window=2, sde_window_max_start=2),
        grpo=GRPOConfig(lr=0.05, clip_range=0.2),
        reward=WeightedReward({"red": ColorReward(), "bright": BrightnessReward()}, weights={"bright": 0.0}),
        decoupled_weights={"bright": 1.0},
    )
    module.configure_model()
    decoded: list[int] = []
    decode = module.policy.decode
    module.policy.decode = lambda latents: decoded.append(len(latents)) or decode(latents)
    console = Console(record=True, width=150)
    evaluation = ConsistencyEvaluation(terms=_terms(), every_n_steps=STEPS, batch_size=2)
    callbacks = [
        LoRAEMA(decay=0.5),
        VideoLogger(every_n_steps=STEPS, num_prompts=1, max_samples=2),
        evaluation,
        RunSummary(console=console),
        ModelCheckpoint(dirpath=root / "checkpoints", save_last=True, every_n_train_steps=1),
    ]
    trainer = _trainer(root, callbacks, max_steps=STEPS, log_every_n_steps=1, limit_val_batches=0)
    trainer.fit(module, _data(root))
    module.policy.decode = decode
    return {"root": root, "module": module, "trainer": trainer, "decoded": decoded, "console": console}


def _events(run) -> EventAccumulator:
    events = EventAccumulator(run["trainer"].log_dir, size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_event_file_holds_reward_kl_and_evaluation_scalars(run):
    scalars = set(_events(run).Tags()["scalars"])
    assert {"reward", "kl", "reward/total", "reward/red"} <= scalars
    expected = {f"eval/{term}/{key}" for term, keys in [("bright", ["score", "brightness"])] for key in keys}
    expected |= {f"eval/color/{key}" for key in ("score", "red", "green", "blue")}
    assert expected <= scalars, sorted(scalars)
    assert {"diag/all_equal_groups", "diag/group_spread", "diag/group_range"} <= scalars, sorted(scalars)
    assert any(tag.startswith("diag/grad_norm_t") for tag in scalars), sorted(scalars)
    base, trained = _events(run).Scalars("eval/bright/score")  # before the first step and after the last
    assert (base.step, trained.step) == (0, STEPS) and all(0.0 <= e.value <= 1.0 for e in (base, trained))


def test_each_reward_term_is_logged_at_the_steps_that_scored_it(run):
    """The decoupled phase scores another term: neither phase's terms may show up, stale, at the other's steps."""
    events = _events(run)
    assert [e.step for e in events.Scalars("reward/total")] == [0, 1]
    assert [e.value for e in events.Scalars("train/phase_decoupled")] == [0.0, 1.0]
    assert [e.step for e in events.Scalars("reward/red")] == [0]
    assert [e.step for e in events.Scalars("reward/bright")] == [1]
    assert [e.step for e in events.Scalars("reward_time/bright")] == [1]


def test_video_summaries_are_animated_gifs_of_the_whole_clip(run):
    images = _events(run).Images("videos/prompt_0")
    assert [image.step for image in images] == [1, STEPS]  # the first step, then every STEPS
    gif = Image.open(__import__("io").BytesIO(images[0].encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == FRAMES
    assert gif.size == (2 * SIZE + 2, SIZE)  # two samples of the group side by side, 2 px apart


def test_mp4_files_decode_to_the_generated_frames(run):
    files = sorted((run["root"] / "run" / "version_0" / "videos").rglob("*.mp4"))
    assert len(files) == 4  # 2 logging steps x 2 samples
    for path in files:
        assert read_video(path).shape == (FRAMES, 3, SIZE, SIZE)


def test_logging_never_decodes_again(run):
    """One decode per training step (the rollout's), one per evaluation batch; the video logger decodes nothing."""
    # the base model's evaluation (prompts 2 + 1 in batches of 2), step 1, step 2, then the evaluation at step 2
    assert run["decoded"] == [2, 1, 2, 2, 2, 1]


def test_evaluation_json_matches_the_ema_weights(run):
    """The evaluation scores ODE videos of the held-out prompts with fixed seeds under the EMA weights."""
    module, trainer = run["module"], run["trainer"]
    report = json.loads((run["root"] / "run" / "version_0" / "eval" / f"fit_step_{STEPS:06d}.json").read_text())
    assert report["num_videos"] == 3 and [v["prompt"] for v in report["videos"]] == EVAL_PROMPTS
    batch = {"prompts": EVAL_PROMPTS, "prompt_ids": torch.arange(3)}
    ema = next(c for c in trainer.callbacks if isinstance(c, LoRAEMA))
    with torch.no_grad():
        with ema.swapped(module):
            averaged = score_terms(_terms(), module.validation_step(batch, 0)["videos"], EVAL_PROMPTS)
        raw = score_terms(_terms(), module.validation_step(batch, 0)["videos"], EVAL_PROMPTS)
    for name, values in averaged.items():
        assert [v[name] for v in report["videos"]] == pytest.approx(values.tolist(), abs=1e-5), name
        assert report["metrics"][name] == pytest.approx(values.mean().item(), abs=1e-5), name
    assert not torch.allclose(raw["color/red"], averaged["color/red"], atol=1e-5)  # EMA really differs from raw


def test_validate_from_checkpoint_reproduces_the_evaluation(run):
    root = run["root"]
    evaluation = ConsistencyEvaluation(terms=_terms())
    trainer = _trainer(root, [LoRAEMA(decay=0.5), evaluation])
    (results,) = trainer.validate(run["module"], _data(root), ckpt_path=str(root / "checkpoints" / "last.ckpt"))
    fit_report = json.loads((root / "run" / "version_0" / "eval" / f"fit_step_{STEPS:06d}.json").read_text())
    assert {k.removeprefix("eval/"): v for k, v in results.items()} == pytest.approx(fit_report["metrics"], abs=1e-5)
    report = json.loads((root / "run" / "version_1" / "eval" / f"validate_step_{STEPS:06d}.json").read_text())
    assert report["stage"] == "validate" and report["num_videos"] == 3


def test_run_summary_table(run):
    text = run["console"].export_text()
    assert "world-r1 run summary" in text and "best reward" in text and "eval/bright/score" in text
    summary = next(c for c in run["trainer"].callbacks if isinstance(c, RunSummary))
    assert [step for step, _ in summary.rewards] == [1] and [step for step, _ in summary.decoupled_rewards] == [2]
    assert "decoupled reward" in text
    assert "(base) ->" in text  # the base model's evaluation next to the trained one
    base = json.loads((run["root"] / "run" / "version_0" / "eval" / "fit_step_000000.json").read_text())
    assert base["step"] == 0 and base["num_videos"] == 3
    assert f"{STEPS} (" in text and "last.ckpt" in text
