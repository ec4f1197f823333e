"""Flow-GRPO: the SDE step with log-probability, rollouts, group advantages (with the control covariate), the clipped
policy loss and the policy update; the forward-process updates (AWM, DiffusionNFT) beside it, and the diagnostics."""

from world_r1.grpo.advantages import Advantages, gather_group_rewards, group_advantages
from world_r1.grpo.config import GRPOConfig, SamplingConfig
from world_r1.grpo.control import advantage_options, resolve_control_terms
from world_r1.grpo.diagnostics import GradientByTimestep, group_reward_stats, sigma_bucket
from world_r1.grpo.forward import ForwardRLConfig
from world_r1.grpo.loss import GRPOLoss, gaussian_kl, grpo_loss
from world_r1.grpo.sde import SDEStep, noise_scale, ode_step, sde_step_with_logprob
from world_r1.grpo.update import PolicyUpdate, apply_gradients, step_loss, update_policy

__all__ = [
    "Advantages",
    "ForwardRLConfig",
    "GRPOConfig",
    "GRPOLoss",
    "GradientByTimestep",
    "PolicyUpdate",
    "SDEStep",
    "SamplingConfig",
    "advantage_options",
    "apply_gradients",
    "gather_group_rewards",
    "gaussian_kl",
    "group_advantages",
    "group_reward_stats",
    "grpo_loss",
    "noise_scale",
    "ode_step",
    "resolve_control_terms",
    "sde_step_with_logprob",
    "sigma_bucket",
    "step_loss",
    "update_policy",
]
