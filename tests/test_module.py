"""The Flow-GRPO module on the tiny model: exact re-scoring, fault handling, checkpoint contents."""

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from tests.helpers import StepOutputs, bare_trainer
from world_r1.checkpoint_io import CheckedCheckpointIO
from world_r1.data import PromptDataModule, load_prompts
from world_r1.grpo import GRPOConfig, SamplingConfig, advantage_options, resolve_control_terms, sde_step_with_logprob
from world_r1.grpo.rollout import sample_rollout
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec, flow_sigmas
from world_r1.policy.guidance import Guidance
from world_r1.recipe import load_config
from world_r1.rewards import BrightnessReward, EpipolarReward, MotionReward, Reward, WeightedReward

ROOT = Path(__file__).resolve().parents[1]


def _module(model_dir: str, **kwargs) -> WorldR1:
    kwargs.setdefault("sampling", SamplingConfig(train_steps=4, eval_steps=4, sde_window=2, sde_window_max_start=2))
    module = WorldR1(
        policy=PolicyConfig(model=model_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=32),
        video=VideoSpec(32, 32, 5),
        **kwargs,
    )
    module.configure_model()
    return module


def _fit(module: WorldR1, tmp_path, steps: int = 2, **trainer_kwargs) -> L.Trainer:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Camera pan left. A barn.\nCamera fixed. A library.\n")
    data = PromptDataModule(train_prompts=str(prompts), decoupled_prompts=None, group_size=2, prompts_per_step=2)
    ckpt_path = trainer_kwargs.pop("ckpt_path", None)
    trainer = bare_trainer(steps, default_root_dir=tmp_path, **trainer_kwargs)
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return trainer


@pytest.mark.parametrize("store_dtype", ["fp32", "bf16"])
def test_rescoring_a_rollout_with_unchanged_weights_gives_ratio_one(tiny_wan_dir, store_dtype):
    module = _module(tiny_wan_dir)
    module.sampling.store_dtype = store_dtype
    prompts = ["a", "b", "c"]
    embeds, negative = module.policy.encode_prompts(prompts), module.policy.encode_negative(3)
    rollout = sample_rollout(
        module.policy,
        module.sampler.starting_noise([1, 2, 3]).noise,
        Guidance(embeds, negative, module.sampling.guidance_scale),
        flow_sigmas(4),
        module.sampling,
        [1, 2],
        torch.Generator().manual_seed(0),
    )
    assert rollout.latents.shape[:2] == (3, 2) and rollout.log_probs.shape == (3, 2)
    for j in range(rollout.num_recorded):
        sigma, nxt = float(rollout.sigmas[j]), float(rollout.sigmas_next[j])
        x, x_next = rollout.latents[:, j].float(), rollout.next_latents[:, j].float()
        v = module.policy.velocity(x, sigma, embeds, negative, module.sampling.guidance_scale)
        rescored = sde_step_with_logprob(v, x, sigma, nxt, module.sampling.noise_level, prev_sample=x_next)
        torch.testing.assert_close(rescored.log_prob, rollout.log_probs[:, j], rtol=0, atol=1e-5)


class _Faulty(Reward):
    """NaN for the first sample of every batch; raises on the second call."""

    calls = 0

    def forward(self, videos, prompts):
        _Faulty.calls += 1
        if _Faulty.calls == 2:
            raise RuntimeError("reward server down")
        score = videos.mean(dim=(1, 2, 3, 4))
        score[0] = float("nan")
        return {"score": score}


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_faulty_rewards_never_poison_the_update(tiny_wan_dir, tmp_path):
    module = _module(tiny_wan_dir, reward=WeightedReward({"faulty": _Faulty(), "bright": BrightnessReward()}))
    before = [p.detach().clone() for p in module.policy.lora_parameters()]
    steps = StepOutputs()
    _fit(module, tmp_path, steps=3, callbacks=[steps])
    after = module.policy.lora_parameters()
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), "training still happened"
    rewards = steps.outputs[-1]["rewards"]
    assert rewards["faulty/degenerate"][0] == 1 and rewards["faulty"][0] == 0


def test_nonfinite_losses_skip_updates_then_stop(tiny_wan_dir, tmp_path, monkeypatch):
    module = _module(tiny_wan_dir, grpo=GRPOConfig(max_nonfinite_updates=2, micro_batch_size=4))
    import world_r1.grpo.update as update_file

    real = update_file.grpo_loss

    def nan_loss(*args, **kwargs):
        out = real(*args, **kwargs)
        return out._replace(loss=out.loss * float("nan"))

    monkeypatch.setattr(update_file, "grpo_loss", nan_loss)
    before = [p.detach().clone() for p in module.policy.lora_parameters()]
    with pytest.raises(RuntimeError, match="2 policy updates in a row had a non-finite loss"):
        _fit(module, tmp_path, steps=5)
    assert all(torch.equal(a, b) for a, b in zip(before, module.policy.lora_parameters(), strict=True))


def test_checkpoint_holds_only_the_lora(tiny_wan_dir, tmp_path):
    module = _module(tiny_wan_dir)
    trainer = _fit(module, tmp_path, steps=1)
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    state = checkpoint["state_dict"]
    assert state and all("lora_" in k for k in state)
    assert len(state) == len(module.policy.lora_parameters())
    # the global random generators resume where they were (they feed LoRA dropout)
    after_save = torch.rand(3)
    module.on_load_checkpoint(checkpoint)
    assert torch.equal(torch.rand(3), after_save)
    assert module.steps_done == checkpoint["world_r1"]["steps_done"] == 1


@pytest.mark.parametrize("config", [["wan21.yaml"], ["wan21.yaml", "overlays/wan21_sde.yaml"]])
@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_the_real_configs_keep_disk_use_bounded(config, tiny_wan_dir, tmp_path):
    """Their checkpoint settings, every step instead of every 25: only the newest two remain, last.ckpt links the
    newest, and a run resumes from it."""
    callbacks = load_config([ROOT / "configs" / name for name in config])["trainer"]["callbacks"]
    (settings,) = [c["init_args"] for c in callbacks if c["class_path"].endswith("ModelCheckpoint")]
    settings |= {"dirpath": str(tmp_path / "checkpoints"), "every_n_train_steps": 1}
    _fit(_module(tiny_wan_dir), tmp_path, steps=4, callbacks=[ModelCheckpoint(**settings)], enable_checkpointing=True)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt") if not p.is_symlink())
    assert kept == ["epoch=0-step=3.ckpt", "epoch=0-step=4.ckpt"]
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_symlink() and last.resolve().name == "epoch=0-step=4.ckpt"
    resumed = _module(tiny_wan_dir)
    _fit(resumed, tmp_path, steps=5, ckpt_path=last, plugins=[CheckedCheckpointIO()])  # the CLI's reader
    assert resumed.steps_done == 5


def test_group_size_must_be_at_least_two():
    with pytest.raises(ValueError, match="G >= 2"):
        PromptDataModule(group_size=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"std_mode": "median"}, "std_mode"),
        ({"train_fraction": 0.0}, "train_fraction"),
        ({"clip_range": 0.0}, "clip_range"),
    ],
)
def test_bad_grpo_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GRPOConfig(**kwargs)


def test_bad_sampling_config():
    with pytest.raises(ValueError, match="noise_schedule"):
        SamplingConfig(noise_schedule="cosine")
    with pytest.raises(ValueError, match="exceeds"):
        SamplingConfig(train_steps=4, sde_window=2, sde_window_max_start=3)


def test_a_precision_plugin_that_casts_the_lora_is_refused(tiny_wan_dir, tmp_path):
    """`bf16-true` casts the whole module, LoRA included: its lr-1e-4 updates would round away in bf16."""
    module = _module(tiny_wan_dir)
    with pytest.raises(ValueError, match=r"not float32.*32-true"):
        _fit(module, tmp_path, steps=1, precision="bf16-true")


def test_compute_dtype_autocasts_fp32_weights(tiny_wan_dir):
    """FSDP keeps one storage dtype per block (fp32 weights with the fp32 LoRA) and computes in bf16 under autocast."""
    policy = PolicyConfig(model=tiny_wan_dir, dtype="fp32", compute_dtype="bf16", lora=LoRAConfig(4, 8.0))
    module = WorldR1(policy=policy, video=VideoSpec(32, 32, 5))
    module.configure_model()
    assert module.policy.transformer.dtype == torch.float32 and module.policy.compute_dtype == torch.bfloat16
    x = torch.randn(1, *module.video.latent_shape())
    embeds = module.policy.encode_prompts(["a barn"])
    fast = module.policy.velocity(x, 0.5, embeds)
    module.policy.compute_dtype = torch.float32
    exact = module.policy.velocity(x, 0.5, embeds)
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)  # bf16 compute rounds differently
    torch.testing.assert_close(fast, exact, rtol=0.05, atol=0.05)


def test_half_precision_policies_decode_with_an_fp32_vae_unless_told_otherwise(tiny_wan_dir):
    module = WorldR1(policy=PolicyConfig(model=tiny_wan_dir, dtype="bf16"), video=VideoSpec(32, 32, 5))
    module.configure_model()
    policy = module.policy
    assert policy.transformer.dtype == torch.bfloat16 and policy.vae.dtype == torch.float32
    z = torch.randn(1, *module.video.latent_shape())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16-mixed trainer around the rollout
        under_autocast = policy.decode(z)
    torch.testing.assert_close(under_autocast, policy.decode(z), rtol=0, atol=0)
    asked = WorldR1(policy=PolicyConfig(model=tiny_wan_dir, dtype="bf16", vae_dtype="bf16"))
    asked.configure_model()
    assert asked.policy.vae.dtype == torch.bfloat16


def test_evaluation_sampler_is_the_configs(tiny_wan_dir):
    euler = _module(tiny_wan_dir)
    unipc = _module(
        tiny_wan_dir, sampling=SamplingConfig(4, 4, sde_window=2, sde_window_max_start=2, eval_sampler="unipc")
    )
    a, b = euler.sampler.generate(["a barn"], [3]), unipc.sampler.generate(["a barn"], [3])
    assert a.shape == b.shape == (1, 5, 3, 32, 32)
    assert not torch.equal(a, b)


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_offloaded_text_encoder_holds_every_prompt_before_training(tiny_wan_dir, tmp_path):
    policy = PolicyConfig(model=tiny_wan_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), offload_text_encoder=True)
    sampling = SamplingConfig(train_steps=2, sde_window=1, sde_window_max_start=1)
    module = WorldR1(policy=policy, video=VideoSpec(32, 32, 5), sampling=sampling)
    module.configure_model()
    calls = []
    encode = module.policy.prompt_cache._encode
    module.policy.prompt_cache._encode = lambda prompts: calls.append(list(prompts)) or encode(prompts)
    _fit(module, tmp_path, steps=1)
    training = ["Camera pan left. A barn.", "Camera fixed. A library."]
    assert set(training) <= {p for batch in calls for p in batch}
    distinct = {"", *training, *(r.text for r in load_prompts("builtin:eval"))}
    assert len(calls) == -(-len(distinct) // 8)  # one warm pass over all prompts at fit start, nothing encoded later
    assert next(module.policy.text_encoder.parameters()).device.type == "cpu"


class _Recording(Reward):
    """Scores brightness and keeps the per-sample metadata of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    def forward(self, videos, prompts, cameras=None, **metadata):
        self.calls.append({"prompts": list(prompts), "cameras": list(cameras), **metadata})
        return {"score": videos.mean(dim=(1, 2, 3, 4))}


def test_per_sample_cameras_reach_the_rewards_in_training_and_evaluation(tiny_wan_dir, tmp_path):
    from world_r1.callbacks import ConsistencyEvaluation

    recording, evaluated = _Recording(), _Recording()
    module = _module(tiny_wan_dir, reward=WeightedReward({"rec": recording}))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "A barn at dusk.", "camera": "pan left"}\n{"prompt": "Camera fixed. A library."}\n')
    data = PromptDataModule(
        train_prompts=str(prompts), decoupled_prompts=None, eval_prompts=str(prompts), group_size=2, prompts_per_step=2
    )
    evaluation = ConsistencyEvaluation(terms={"rec": evaluated}, every_n_steps=1, batch_size=2, use_ema=False)
    bare_trainer(1, default_root_dir=tmp_path, callbacks=[evaluation]).fit(module, data)

    (call,) = recording.calls
    expected = {"A barn at dusk.": "pan left", "Camera fixed. A library.": None}
    assert call["cameras"] == [expected[p] for p in call["prompts"]]  # the JSONL camera, not the prompt text
    assert call["phase"] == "main" and len(call["prompt_ids"]) == len(call["prompts"]) == 4
    base, scored = evaluated.calls  # the base model before step 1, then after it
    for call in (base, scored):
        assert call["cameras"] == [expected[p] for p in call["prompts"]]


def test_advantage_control_settings_reach_the_advantages():
    """grpo.control_covariate hands the weighted control terms and the covariate to the advantages, in the main
    phase only; a wrong term or key, or a phase scoring a controlled term without the covariate, fails when built."""
    reward = WeightedReward({"epipolar": EpipolarReward(), "motion": MotionReward()}, {"epipolar": 2.0, "motion": 0.5})
    scores = {
        "epipolar": torch.tensor([0.4, 0.6]),
        "epipolar/parallax_px": torch.tensor([3.0, 1.0]),
        "motion": torch.tensor([1.0, 0.5]),
    }

    def options(grpo: GRPOConfig, rewards=scores, weights=None, decoupled=None) -> dict:
        terms = resolve_control_terms(grpo, reward, decoupled)
        return advantage_options(grpo, terms, rewards, reward.weights if weights is None else weights)

    assert set(options(GRPOConfig())) == {"std_mode", "clip"}
    control = GRPOConfig(control_covariate="epipolar/parallax_px")
    assert WorldR1(reward=reward, grpo=control).control_terms == ["epipolar"]
    kwargs = options(control)
    torch.testing.assert_close(kwargs["controlled"], 2.0 * scores["epipolar"])
    torch.testing.assert_close(kwargs["covariate"], scores["epipolar/parallax_px"])
    assert "controlled" not in options(control, weights={"motion": 1.0})  # decoupled phase: nothing to control
    with pytest.raises(ValueError, match="'epipolar/motion' is not a reward key"):  # named at construction
        WorldR1(reward=reward, grpo=GRPOConfig(control_covariate="epipolar/motion"))
    with pytest.raises(ValueError, match="'epipolar/parallax_px' is not a reward key of this step"):
        options(control, rewards={"epipolar": scores["epipolar"]})  # a reward that dropped the key
    with pytest.raises(ValueError, match=r"names \['sharp'\] of model.reward"):
        WorldR1(reward=reward, grpo=GRPOConfig(control_covariate="epipolar/parallax_px", control_terms=("sharp",)))
    with pytest.raises(ValueError, match="control_terms is empty"):
        GRPOConfig(control_covariate="epipolar/parallax_px", control_terms=())
    only_motion = WeightedReward({"motion": MotionReward()})
    with pytest.raises(ValueError, match=r"names no term of model.reward, whose terms are \['motion'\]"):
        WorldR1(reward=only_motion, grpo=GRPOConfig(control_covariate="motion/parallax_px"))
    rebuilt = WorldR1(grpo=control)  # as a checkpoint is rebuilt: the default reward is only checked when training
    with pytest.raises(ValueError, match=r"names no term of model\.reward"):  # its default reward cannot train so
        resolve_control_terms(rebuilt.grpo, rebuilt.reward, rebuilt.decoupled_weights)  # what training checks
    by_motion = GRPOConfig(control_covariate="motion", control_terms=("epipolar",))  # a term's score as covariate
    torch.testing.assert_close(options(by_motion)["covariate"], scores["motion"])
    with pytest.raises(ValueError, match="decoupled phase scores \\['epipolar'\\] but not 'motion'"):
        WorldR1(reward=reward, grpo=by_motion, decoupled_weights={"epipolar": 1.0})
