"""Sampling videos as plain functions: the training rollouts that record what the policy update needs (Flow-GRPO's
SDE window, the release's UniPC transitions) and the deterministic samplers of evaluation and ``sample``.

Every function takes the policy, the starting noise, a :class:`~world_r1.policy.guidance.Guidance` and, optionally,
the camera ``injection`` that runs after each step (:mod:`world_r1.camera.noise`), and returns latents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from world_r1.grpo.config import SamplingConfig
from world_r1.grpo.sde import ode_step, sde_step_with_logprob
from world_r1.grpo.transition import TransitionKernel
from world_r1.policy.guidance import Guidance
from world_r1.policy.schedule import wan_unipc_scheduler
from world_r1.policy.wan import WanPolicy
from world_r1.settings import resolve_dtype

#: runs after step ``k``: ``(k, x, velocity, sigma, x_next, sigma_next) -> x_next`` (the camera injection)
Injection = Callable[[int, torch.Tensor, torch.Tensor, float, torch.Tensor, float], torch.Tensor]


@dataclass
class Rollout:
    """One batch of rollouts. ``S`` is the number of recorded steps, the same for every sample of the batch.

    latents / next_latents: (B, S, C, T, h, w) the state before and after each recorded step; sigmas / sigmas_next:
    (S,) the noise levels the ``kernel`` scores each step between; model_sigmas: (S,) the noise level the transformer
    was called at (UniPC calls it at the scheduler's integer timestep over 1000; the same as ``sigmas`` for Euler);
    log_probs: (B, S) float32 under the sampling policy; final: (B, C, T, h, w); kernel: how a recorded step is scored.
    """

    latents: torch.Tensor
    next_latents: torch.Tensor
    sigmas: torch.Tensor
    sigmas_next: torch.Tensor
    log_probs: torch.Tensor
    final: torch.Tensor
    kernel: TransitionKernel
    model_sigmas: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.model_sigmas is None:
            self.model_sigmas = self.sigmas

    @property
    def num_recorded(self) -> int:
        return self.log_probs.shape[1]


class _Recorder:
    """Collects the recorded steps of a rollout (states in the storage dtype) and builds the :class:`Rollout`."""

    def __init__(self, store: torch.dtype) -> None:
        self.store = store
        self.states: list[torch.Tensor] = []
        self.next_states: list[torch.Tensor] = []
        self.log_probs: list[torch.Tensor] = []

    def add(self, x: torch.Tensor, x_next: torch.Tensor, log_prob: torch.Tensor) -> None:
        self.states.append(x.to(self.store))
        self.next_states.append(x_next.to(self.store))
        self.log_probs.append(log_prob)

    def rollout(self, schedule: torch.Tensor, steps: Sequence[int], final: torch.Tensor, kernel, **extra) -> Rollout:
        index = torch.tensor(list(steps), dtype=torch.long)
        return Rollout(
            latents=torch.stack(self.states, dim=1),
            next_latents=torch.stack(self.next_states, dim=1),
            sigmas=schedule[index],
            sigmas_next=schedule[index + 1],
            log_probs=torch.stack(self.log_probs, dim=1),
            final=final,
            kernel=kernel,
            **extra,
        )


@torch.no_grad()
def sample_rollout(
    policy: WanPolicy,
    noise: torch.Tensor,
    guidance: Guidance,
    sigmas: torch.Tensor,
    config: SamplingConfig,
    sde_steps: list[int],
    generator: torch.Generator | None = None,
    injection: Injection | None = None,
) -> Rollout:
    """Flow-GRPO(-Fast): denoise ``noise`` (B, C, T, h, w) along ``sigmas`` (N+1,) with Euler steps, SDE on
    ``sde_steps`` and ODE elsewhere.

    Only the SDE steps are recorded: they are the only ones with a log-probability, and the only ones trained.
    Recorded states are rounded to ``config.store_dtype`` before they are used (for the velocity, and for the rest of
    the trajectory) and their log-probs are computed on the rounded values, so re-scoring with unchanged weights
    gives a ratio of exactly 1 whatever the storage precision. A held first frame (an image-to-video condition) stays
    at the image throughout and is left out of the log-probabilities. ``injection`` acts on the state after each step
    (so every recorded step is still the Gaussian step from the state the policy saw).
    """
    store = resolve_dtype(config.store_dtype)
    condition = guidance.image
    kernel = TransitionKernel("sde", config.noise_level, config.noise_schedule)
    x = condition.impose(noise.float())
    mask = condition.free_mask(x)
    recorder = _Recorder(store)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        if i in sde_steps:
            x = x.to(store).float()  # the state the policy sees is exactly the stored one
        v = guidance.velocity(policy, x, sigma)
        if i not in sde_steps:
            x = condition.impose(_inject(injection, i, x, v, sigma, ode_step(v, x, sigma, sigma_next), sigma_next))
            continue
        kwargs = {"noise_level": config.noise_level, "noise_schedule": config.noise_schedule, "mask": mask}
        proposal = sde_step_with_logprob(v, x, sigma, sigma_next, generator=generator, **kwargs).prev_sample
        x_next = condition.impose(proposal.to(store).float())
        recorder.add(x, x_next, kernel.score(v, x, sigma, sigma_next, x_next, mask).log_prob)
        x = condition.impose(_inject(injection, i, x, v, sigma, x_next, sigma_next))
    return recorder.rollout(sigmas, sde_steps, x, kernel)


@torch.no_grad()
def sample_unipc_rollout(
    policy: WanPolicy,
    noise: torch.Tensor,
    guidance: Guidance,
    num_steps: int,
    flow_shift: float,
    recorded_steps: Sequence[int],
    store_dtype: str = "fp32",
    injection: Injection | None = None,
) -> Rollout:
    """World-R1's released rollout: deterministic multistep UniPC from ``noise`` (Wan's sampler, as
    :func:`sample_unipc`), recording the transitions ``x_k -> x_{k+1}`` of ``recorded_steps`` (the release: the first
    ``floor(num_steps * 0.49)``), where ``x_{k+1}`` is the UniPC output after the camera ``injection``: the injection
    is part of the trained transition. Each is scored by the release's Euler kernel
    (:mod:`world_r1.grpo.transition`); recorded states are rounded to ``store_dtype`` and the sampler continues from
    the rounded state, so re-scoring with unchanged weights gives a ratio of exactly 1."""
    store = resolve_dtype(store_dtype)
    scheduler = wan_unipc_scheduler(flow_shift)
    scheduler.set_timesteps(num_steps, device=noise.device)
    schedule = scheduler.sigmas.float().cpu()
    kernel = TransitionKernel("euler", sigma_max=float(schedule[0]), sigma_min=float(schedule[-1]))
    condition = guidance.image
    recorder = _Recorder(store)
    steps, model_sigmas = sorted(recorded_steps), []
    x = noise.float()
    for i, t in enumerate(scheduler.timesteps):
        sigma, sigma_next = float(schedule[i]), float(schedule[i + 1])
        model_sigma = float(t) / scheduler.config.num_train_timesteps  # what Wan is called with, as diffusers does
        if i in steps:
            x = x.to(store).float()
        v = guidance.velocity(policy, condition.impose(x), model_sigma)
        x_next = _inject(injection, i, x, v, sigma, scheduler.step(v, t, x, return_dict=False)[0], sigma_next)
        if i in steps:
            x_next = x_next.to(store).float()
            recorder.add(x, x_next, kernel.score(v, x, sigma, sigma_next, x_next, condition.free_mask(x)).log_prob)
            model_sigmas.append(model_sigma)
        x = x_next
    final = condition.impose(x)
    return recorder.rollout(schedule, steps, final, kernel, model_sigmas=torch.tensor(model_sigmas))


@torch.no_grad()
def sample_ode(
    policy: WanPolicy,
    noise: torch.Tensor,
    guidance: Guidance,
    sigmas: torch.Tensor,
    injection: Injection | None = None,
) -> torch.Tensor:
    """Deterministic Euler sampling (evaluation, `sample`): latents ``(B, C, T, h, w)`` from ``noise``."""
    condition = guidance.image
    x = condition.impose(noise.float())
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        v = guidance.velocity(policy, x, sigma)
        x = condition.impose(_inject(injection, i, x, v, sigma, ode_step(v, x, sigma, sigma_next), sigma_next))
    return x


@torch.no_grad()
def sample_unipc(
    policy: WanPolicy,
    noise: torch.Tensor,
    guidance: Guidance,
    num_steps: int,
    flow_shift: float,
    injection: Injection | None = None,
) -> torch.Tensor:
    """Deterministic sampling as ``WanPipeline`` does by default: diffusers' multistep UniPC on flow predictions
    with shifted flow sigmas, the transformer called at the scheduler's (integer) timesteps. Higher order than Euler,
    so fewer steps for the same video; latents ``(B, C, T, h, w)`` from ``noise``."""
    scheduler = wan_unipc_scheduler(flow_shift)
    scheduler.set_timesteps(num_steps, device=noise.device)
    condition = guidance.image
    x = noise.float()
    for i, t in enumerate(scheduler.timesteps):
        timestep_sigma = float(t) / scheduler.config.num_train_timesteps  # what Wan is called with, as diffusers does
        v = guidance.velocity(policy, condition.impose(x), timestep_sigma)
        x_next = scheduler.step(v, t, x, return_dict=False)[0]
        x = _inject(injection, i, x, v, float(scheduler.sigmas[i]), x_next, float(scheduler.sigmas[i + 1]))
    return condition.impose(x)


def _inject(injection: Injection | None, step: int, x, v, sigma: float, x_next, sigma_next: float):
    return x_next if injection is None else injection(step, x, v, sigma, x_next, sigma_next)
