"""Sampling G videos per prompt while recording what the policy update needs (Flow-GRPO and Flow-GRPO-Fast)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world_r1.camera.reinject import NoiseReinjection
from world_r1.grpo.config import SamplingConfig
from world_r1.grpo.sde import ode_step, sde_step_with_logprob
from world_r1.policy.conditioning import ImageCondition
from world_r1.policy.schedule import wan_unipc_scheduler
from world_r1.policy.wan import WanPolicy
from world_r1.settings import resolve_dtype


@dataclass
class Rollout:
    """One batch of rollouts. ``S`` is the number of recorded (SDE) steps, the same for every sample of the batch.

    latents / next_latents: (B, S, C, T, h, w) the state before and after each recorded step;
    sigmas / sigmas_next: (S,); log_probs: (B, S) float32 under the sampling policy; final: (B, C, T, h, w).
    """

    latents: torch.Tensor
    next_latents: torch.Tensor
    sigmas: torch.Tensor
    sigmas_next: torch.Tensor
    log_probs: torch.Tensor
    final: torch.Tensor

    @property
    def num_recorded(self) -> int:
        return self.log_probs.shape[1]


@torch.no_grad()
def sample_rollout(
    policy: WanPolicy,
    noise: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor | None,
    sigmas: torch.Tensor,
    config: SamplingConfig,
    sde_steps: list[int],
    generator: torch.Generator | None = None,
    condition: ImageCondition | None = None,
    reinjection: NoiseReinjection | None = None,
) -> Rollout:
    """Denoise ``noise`` (B, C, T, h, w) along ``sigmas`` (N+1,), SDE on ``sde_steps`` and ODE elsewhere.

    Only the SDE steps are recorded: they are the only ones with a log-probability, and the only ones trained.
    Recorded states are rounded to ``config.store_dtype`` before they are used (for the velocity, and for the rest of
    the trajectory) and their log-probs are computed on the rounded values, so re-scoring with unchanged weights
    gives a ratio of exactly 1 whatever the storage precision. ``condition`` is the image conditioning of an
    image-to-video Wan; a held first frame stays at the image throughout and is left out of the log-probabilities.
    ``reinjection`` re-injects the warped noise after the first steps (applied to the state after each step, so every
    recorded step is still the Gaussian step from the state the policy saw).
    """
    store = resolve_dtype(config.store_dtype)
    condition = condition or ImageCondition()
    x = condition.impose(noise.float())
    mask = condition.free_mask(x)
    recorded: dict[str, list[torch.Tensor]] = {"x": [], "next": [], "logp": []}
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        if i in sde_steps:
            x = x.to(store).float()  # the state the policy sees is exactly the stored one
        v = policy.velocity(
            x, sigma, prompt_embeds, negative_embeds, config.guidance_scale, condition, config.guidance_scale_2
        )
        if i not in sde_steps:
            x = condition.impose(_reinject(reinjection, i, x, v, sigma, ode_step(v, x, sigma, sigma_next), sigma_next))
            continue
        kwargs = {"noise_level": config.noise_level, "noise_schedule": config.noise_schedule, "mask": mask}
        proposal = sde_step_with_logprob(v, x, sigma, sigma_next, generator=generator, **kwargs).prev_sample
        x_next = condition.impose(proposal.to(store).float())
        step = sde_step_with_logprob(v, x, sigma, sigma_next, prev_sample=x_next, **kwargs)
        recorded["x"].append(x.to(store))
        recorded["next"].append(x_next.to(store))
        recorded["logp"].append(step.log_prob)
        x = condition.impose(_reinject(reinjection, i, x, v, sigma, x_next, sigma_next))
    index = torch.tensor(sde_steps, dtype=torch.long)
    return Rollout(
        latents=torch.stack(recorded["x"], dim=1),
        next_latents=torch.stack(recorded["next"], dim=1),
        sigmas=sigmas[index],
        sigmas_next=sigmas[index + 1],
        log_probs=torch.stack(recorded["logp"], dim=1),
        final=x,
    )


@torch.no_grad()
def sample_ode(
    policy: WanPolicy,
    noise: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor | None,
    sigmas: torch.Tensor,
    guidance_scale: float,
    condition: ImageCondition | None = None,
    guidance_scale_2: float | None = None,
    reinjection: NoiseReinjection | None = None,
) -> torch.Tensor:
    """Deterministic Euler sampling (evaluation, `sample`): latents ``(B, C, T, h, w)`` from ``noise``."""
    condition = condition or ImageCondition()
    x = condition.impose(noise.float())
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        v = policy.velocity(x, sigma, prompt_embeds, negative_embeds, guidance_scale, condition, guidance_scale_2)
        x = condition.impose(_reinject(reinjection, i, x, v, sigma, ode_step(v, x, sigma, sigma_next), sigma_next))
    return x


@torch.no_grad()
def sample_unipc(
    policy: WanPolicy,
    noise: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor | None,
    num_steps: int,
    flow_shift: float,
    guidance_scale: float,
    condition: ImageCondition | None = None,
    guidance_scale_2: float | None = None,
    reinjection: NoiseReinjection | None = None,
) -> torch.Tensor:
    """Deterministic sampling as ``WanPipeline`` does by default: diffusers' multistep UniPC on flow predictions
    with shifted flow sigmas, the transformer called at the scheduler's (integer) timesteps. Higher order than Euler,
    so fewer steps for the same video; latents ``(B, C, T, h, w)`` from ``noise``."""
    scheduler = wan_unipc_scheduler(flow_shift)
    scheduler.set_timesteps(num_steps, device=noise.device)
    condition = condition or ImageCondition()
    x = noise.float()
    for i, t in enumerate(scheduler.timesteps):
        timestep_sigma = float(t) / scheduler.config.num_train_timesteps  # what Wan is called with, as diffusers does
        v = policy.velocity(
            condition.impose(x),
            timestep_sigma,
            prompt_embeds,
            negative_embeds,
            guidance_scale,
            condition,
            guidance_scale_2,
        )
        x_next = scheduler.step(v, t, x, return_dict=False)[0]
        x = _reinject(reinjection, i, x, v, float(scheduler.sigmas[i]), x_next, float(scheduler.sigmas[i + 1]))
    return condition.impose(x)


def _reinject(reinjection: NoiseReinjection | None, step: int, x, v, sigma: float, x_next, sigma_next: float):
    return x_next if reinjection is None else reinjection(step, x, v, sigma, x_next, sigma_next)
