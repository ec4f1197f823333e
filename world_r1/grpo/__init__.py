"""Flow-GRPO: the SDE step with log-probability, rollouts, group advantages and the clipped policy loss."""

from world_r1.grpo.advantages import Advantages, gather_group_rewards, group_advantages
from world_r1.grpo.config import GRPOConfig, SamplingConfig
from world_r1.grpo.loss import GRPOLoss, gaussian_kl, grpo_loss
from world_r1.grpo.sde import SDEStep, noise_scale, ode_step, sde_step_with_logprob

__all__ = [
    "Advantages",
    "GRPOConfig",
    "GRPOLoss",
    "SDEStep",
    "SamplingConfig",
    "gather_group_rewards",
    "gaussian_kl",
    "group_advantages",
    "grpo_loss",
    "noise_scale",
    "ode_step",
    "sde_step_with_logprob",
]
