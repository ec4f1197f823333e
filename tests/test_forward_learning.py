"""The proof that AWM and DiffusionNFT learn through the module: after training on deterministic (ODE) rollouts, fresh
videos from fixed seeds score higher, by the criterion of tests/test_learning.py (the paired gain over 32 seeds above
4 standard errors). Same tiny model and reachable reward as there: closeness to a reference video the base model
makes from a held-out seed."""

import pytest

from tests.test_learning import PROMPT, REFERENCE_SEED, TARGETS, ReferenceMatch, _fresh_reward, _train
from world_r1.grpo import ForwardRLConfig, GRPOConfig, SamplingConfig
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec
from world_r1.rewards import WeightedReward

#: per method: the update's settings (no KL to the base model: the test is whether the reward signal is followed)
SETTINGS = {
    "awm": ForwardRLConfig(algorithm="awm", timesteps_per_sample=3, kl_beta=0.0, awm_power=1.0, shared_sigmas=True),
    "nft": ForwardRLConfig(algorithm="nft", timesteps_per_sample=3, kl_beta=0.0),
}
LEARNING_RATES = {"awm": 5e-3, "nft": 5e-3}
STEPS = 60


def _module(model_dir: str, algorithm: str, seed: int = 0) -> WorldR1:
    module = WorldR1(
        policy=PolicyConfig(
            model=model_dir, dtype="fp32", lora=LoRAConfig(8, 16.0, target_modules=TARGETS), max_sequence_length=32
        ),
        video=VideoSpec(32, 32, 5),
        sampling=SamplingConfig(train_steps=6, eval_steps=6, rollout="ode"),
        grpo=GRPOConfig(lr=LEARNING_RATES[algorithm], micro_batch_size=16),
        reward=WeightedReward({"match": ReferenceMatch()}),
        seed=seed,
        forward_rl=SETTINGS[algorithm],
    )
    module.configure_model()
    module.image = None
    module.reward.terms["match"].reference = module.sampler.generate([PROMPT], [REFERENCE_SEED])[0]
    return module


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["awm", "nft"])
def test_reward_of_fresh_rollouts_rises(tiny_wan_dir, tmp_path, algorithm):
    module = _module(tiny_wan_dir, algorithm)
    before = _fresh_reward(module)
    _train(module, tmp_path, steps=STEPS)
    after = _fresh_reward(module)
    gain = after - before
    standard_error = gain.std() / len(before) ** 0.5
    assert gain.mean() > 4 * standard_error, (before.mean(), after.mean(), standard_error)
    assert gain.mean() > 0.01  # measured from 0.734: AWM +0.022 (7.3 standard errors, 43 s), NFT +0.021 (6.9, 177 s)
