"""The progress bar counts Flow-GRPO steps and shows the reward and KL, not the logger's version."""

from types import SimpleNamespace

from world_r1.callbacks import StepProgressBar


def test_bar_shows_reward_and_kl_without_version():
    bar = StepProgressBar()
    trainer = SimpleNamespace(loggers=[SimpleNamespace(version=3)], progress_bar_metrics={"reward": 0.5, "kl": 0.01})
    assert bar.get_metrics(trainer, None) == {"reward": 0.5, "kl": 0.01}
    assert bar._get_train_description(0) == "Flow-GRPO steps"
