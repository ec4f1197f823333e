"""Saved hyper-parameters -> the module's settings, in one place: the plain dicts a YAML-configured `fit` saves, the
dataclasses a Python-built run saves, and runs saved before settings were added, which keep behaving as they did."""

from dataclasses import asdict

import pytest

from world_r1.camera import CameraConfig, MotionScale
from world_r1.grpo import SamplingConfig
from world_r1.hparams import module_arguments, upgrade
from world_r1.module import WorldR1
from world_r1.policy import PolicyConfig


def test_dicts_saved_by_the_cli_become_the_settings_the_module_takes():
    saved = {
        "policy": asdict(PolicyConfig(model="some/wan")),
        "camera": asdict(CameraConfig(enabled=True)),
        "sampling": asdict(SamplingConfig(rollout="unipc")),
        "seed": 3,
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
    }
    arguments = module_arguments(saved)
    assert "_instantiator" not in arguments and arguments["seed"] == 3
    assert isinstance(arguments["camera"], CameraConfig) and isinstance(arguments["camera"].motion, MotionScale)
    assert arguments["camera"] == CameraConfig(enabled=True) and arguments["sampling"].rollout == "unipc"
    module = WorldR1(**arguments)
    assert module.camera.warp == "gwtf" and module.policy_config.model == "some/wan"


def test_runs_saved_before_a_setting_existed_keep_behaving_as_they_did():
    old = asdict(CameraConfig(enabled=True))
    for key in ("warp", "injection", "reinject_steps", "degradation"):
        old.pop(key)
    for key in ("dolly", "convention"):
        old["motion"].pop(key)
    old["motion"] |= {"rotation_deg": 30.0, "translation": 1.0}
    camera = module_arguments({"camera": old})["camera"]
    # the project's transport from warped noise, no re-injection, the classic path, travel along the view as sideways
    assert (camera.warp, camera.injection, camera.reinject_steps) == ("transport", "initial", 0)
    assert camera.motion.convention == "classic" and camera.motion.dolly == 1.0
    assert camera.degradation == CameraConfig().degradation  # a setting the old run never used: today's default
    pickled = CameraConfig(enabled=True)  # what unpickling a CameraConfig saved before the field existed gives
    del pickled.__dict__["warp"]
    assert upgrade({"camera": pickled})["camera"]["warp"] == "transport"


def test_a_setting_unknown_here_is_refused_by_name():
    with pytest.raises(ValueError, match=r"\['hyperwarp'\] are unknown.*newer version"):
        module_arguments({"camera": {"enabled": True, "hyperwarp": 2}})


def test_a_trajectory_term_of_before_the_split_becomes_its_forms_class():
    from world_r1.hparams import upgrade_reward

    old = {"fov_deg": 50.0, "static_px": 1.0, "rotation_tolerance_deg": 1.0, "path_estimator": None, "still_deg": 3.0}
    config = {"reward": {"terms": {"a": {"class_path": "world_r1.rewards.TrajectoryReward", "init_args": old}}}}
    config["reward"]["terms"]["b"] = {"class_path": "world_r1.rewards.TrajectoryReward", "init_args": {"form": "shape"}}
    config["reward"]["terms"]["c"] = {"class_path": "world_r1.rewards.trajectory.TrajectoryReward"}
    config["reward"]["terms"]["d"] = {"class_path": "world_r1.rewards.TrajectoryReward", "init_args": {"form": "path"}}
    terms = upgrade_reward(config)["reward"]["terms"]
    # the flow form (the old default) keeps what it read; settings only other forms read are dropped
    assert terms["a"] == {"class_path": "world_r1.rewards.FlowTrajectoryReward", "init_args": {"fov_deg": 50.0}}
    assert terms["b"] == {"class_path": "world_r1.rewards.PathShapeReward", "init_args": {}}
    assert terms["c"]["class_path"] == "world_r1.rewards.FlowTrajectoryReward"
    assert terms["d"] == {"class_path": "world_r1.rewards.ReleaseTrajectoryReward", "init_args": {}}
    kept = {"class_path": "world_r1.rewards.EpipolarReward", "init_args": {"min_parallax_px": 2.0}}
    assert upgrade_reward([kept]) == [kept] and upgrade({"reward": config["reward"]})["reward"]["terms"] == terms
    with pytest.raises(ValueError, match=r"form: pose was removed.*PathShapeReward"):
        upgrade_reward({"class_path": "world_r1.rewards.TrajectoryReward", "init_args": {"form": "pose"}})
