"""The settings of Flow-GRPO, as YAML sees them: how rollouts are sampled and how the policy is updated.

Two ways of sampling training rollouts (``sampling.rollout``), each with the log-probability its update trains:

* ``sde``: the project's Flow-GRPO-Fast. Euler steps, SDE noise on a short random window (``sde_window``; 0: every
  step, full Flow-GRPO), only those steps recorded and trained.
* ``ode``: deterministic Euler on ``train_steps`` steps, nothing recorded but the clean latents: for the
  forward-process methods (``model.forward_rl``: AWM, DiffusionNFT), which train on those alone.
* ``unipc``: World-R1's released step. Deterministic multistep UniPC (Wan's own sampler); the first
  ``floor(train_steps * timestep_fraction)`` transitions of every sample (24 of 50 in the release) recorded and
  trained, each scored as a Gaussian around its Euler step (:mod:`world_r1.grpo.transition`). Exploration comes
  from the starting noise and the camera injection.

The enumerations are ``Literal`` types: LightningCLI checks them when it parses a config, and ``__post_init__``
checks them with the same lists for code that builds the dataclasses directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from world_r1.settings import Dtype, check_choice

Rollout = Literal["sde", "unipc", "ode"]
NoiseSchedule = Literal["flow_grpo", "linear"]
StdMode = Literal["group", "global"]
EvalSampler = Literal["euler", "unipc"]


@dataclass
class SamplingConfig:
    """How rollouts are sampled (the module docstring): Flow-GRPO-Fast's SDE window, or the release's UniPC."""

    train_steps: int = 10
    """Denoising steps of a training rollout ("denoising reduction"; the release: 50)."""
    eval_steps: int = 40
    """Denoising steps for evaluation and `sample` (deterministic ODE)."""
    guidance_scale: float = 5.0
    """Classifier-free guidance, in rollouts and in the policy update alike."""
    guidance_scale_2: float | None = None
    """CFG of a two-expert Wan's low-noise expert (Wan 2.2 A14B); None: as above."""
    flow_shift: float = 3.0
    """Wan's sigma shift: 3.0 at 480p, 5.0 at 720p."""
    noise_level: float = 0.7
    """SDE noise level a."""
    noise_schedule: NoiseSchedule = "flow_grpo"
    """"flow_grpo": a*sqrt(sigma/(1-sigma)); "linear": World-R1's release."""
    sde_window: int = 2
    """SDE steps per rollout (Flow-GRPO-Fast); 0 = every step is an SDE step (full Flow-GRPO)."""
    sde_window_max_start: int = 4
    """The window starts at a random step in [0, this]: early/intermediate steps only."""
    shared_noise: bool = False
    """One initial noise per group (True) or one per sample (False)."""
    store_dtype: Dtype = "fp32"
    """Dtype of recorded latents: "bf16" halves rollout memory (log-probs stay exact)."""
    eval_sampler: EvalSampler = "euler"
    """ODE of evaluation and `sample`: "euler" (the rollouts') or "unipc" (Wan's)."""
    rollout: Rollout = "sde"
    """sde: Euler with SDE noise on a window (Flow-GRPO-Fast); unipc: the release's UniPC; ode: deterministic Euler
    recording only the clean latents (for model.forward_rl)."""
    timestep_fraction: float = 0.49
    """With rollout unipc: the first floor(train_steps * this) transitions are trained (the release)."""

    def __post_init__(self) -> None:
        if self.train_steps < 1 or self.eval_steps < 1:
            raise ValueError("sampling.train_steps and sampling.eval_steps must be >= 1.")
        check_choice("sampling.rollout", self.rollout, Rollout)
        check_choice("sampling.noise_schedule", self.noise_schedule, NoiseSchedule)
        if self.rollout == "unipc" and not 0 < int(self.train_steps * self.timestep_fraction) <= self.train_steps:
            raise ValueError(
                f"sampling.timestep_fraction={self.timestep_fraction} trains floor({self.train_steps} x "
                f"{self.timestep_fraction}) = {int(self.train_steps * self.timestep_fraction)} of the "
                f"{self.train_steps} steps: use a fraction in [{1 / self.train_steps:.3g}, 1] (the release: 0.49)."
            )
        check_choice("sampling.eval_sampler", self.eval_sampler, EvalSampler)
        check_choice("sampling.store_dtype", self.store_dtype, Dtype)
        if self.rollout == "sde" and not 0 <= self.sde_window <= self.train_steps:
            raise ValueError(f"sampling.sde_window must be in [0, train_steps={self.train_steps}].")
        if self.rollout == "sde" and self.sde_window and self.sde_window_max_start + self.sde_window > self.train_steps:
            raise ValueError(
                f"sampling.sde_window_max_start={self.sde_window_max_start} + sde_window={self.sde_window} exceeds "
                f"train_steps={self.train_steps}: lower the start or the window."
            )
        if self.noise_level < 0:
            raise ValueError(f"sampling.noise_level must be >= 0, got {self.noise_level}.")

    def recorded_steps(self, trainable: Sequence[range] | None = None) -> list[int]:
        """The release's trained steps: the first ``floor(train_steps * timestep_fraction)`` of every rollout, those
        of them that an adapted transformer denoises (``trainable``: the runs of such steps; None: every step)."""
        first = range(int(self.train_steps * self.timestep_fraction))
        runs = list(trainable) if trainable is not None else [range(self.train_steps)]
        steps = [i for i in first if any(i in run for run in runs)]
        if not steps:
            raise ValueError(
                f"None of the first {len(first)} steps (sampling.timestep_fraction) is denoised by a transformer with "
                "a LoRA: raise the fraction or add that expert to lora.experts."
            )
        return steps

    def sde_steps(self, generator: torch.Generator, trainable: Sequence[range] | None = None) -> list[int]:
        """Indices of the steps that get SDE noise (and are trained) in one rollout.

        ``trainable``: the runs of consecutive steps whose transformer carries a LoRA (a two-expert Wan has one run
        per expert; None: every step). Full Flow-GRPO trains them all; a Flow-GRPO-Fast window is drawn among the
        starts in ``[0, sde_window_max_start]`` whose whole window lies inside one run, so it never straddles the
        expert boundary and a window on one expert trains that expert's LoRA only.
        """
        runs = list(trainable) if trainable is not None else [range(self.train_steps)]
        if self.sde_window == 0:
            return [i for run in runs for i in run]
        starts = [
            s
            for s in range(self.sde_window_max_start + 1)
            if any(s in run and s + self.sde_window - 1 in run for run in runs)
        ]
        if not starts:
            raise ValueError(
                f"No SDE window of {self.sde_window} steps starting at step 0-{self.sde_window_max_start} lies on "
                f"the steps of an adapted transformer ({', '.join(f'{r.start}-{r.stop - 1}' for r in runs)}): "
                "raise sampling.sde_window_max_start, shorten sampling.sde_window or add the expert to lora.experts."
            )
        start = starts[int(torch.randint(0, len(starts), (1,), generator=generator))]
        return list(range(start, start + self.sde_window))


@dataclass
class GRPOConfig:
    """The Flow-GRPO update (clipped surrogate + KL to the base model); defaults are World-R1's released values."""

    clip_range: float = 1e-3
    """PPO-style ratio clip epsilon."""
    beta: float = 0.004
    """Weight of the KL to the LoRA-disabled base model."""
    adv_clip: float = 5.0
    """Advantages are clipped to [-adv_clip, adv_clip]."""
    std_mode: StdMode = "group"
    """"group": per-prompt std; "global": std over the whole batch."""
    train_fraction: float = 1.0
    """Fraction of the recorded SDE steps trained per rollout."""
    inner_epochs: int = 1
    """Passes over one batch of rollouts."""
    micro_batch_size: int = 4
    """Samples per forward/backward (gradients are accumulated)."""
    lr: float = 1e-4
    """AdamW learning rate on the LoRA parameters."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    max_nonfinite_updates: int = 5
    """Stop after this many skipped (non-finite) updates in a row."""
    control_covariate: str | None = None
    """A reward key ("epipolar/parallax_px"): control_terms compared at equal value."""
    control_terms: tuple[str, ...] | None = None
    """The terms so compared (None: epipolar and depth, if scored)."""

    def __post_init__(self) -> None:
        check_choice("grpo.std_mode", self.std_mode, StdMode)
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"grpo.train_fraction must be in (0, 1], got {self.train_fraction}.")
        if self.clip_range <= 0 or self.beta < 0 or self.micro_batch_size < 1 or self.inner_epochs < 1:
            raise ValueError("grpo: need clip_range > 0, beta >= 0, micro_batch_size >= 1 and inner_epochs >= 1.")
        if self.control_terms is not None and not self.control_terms:
            raise ValueError("grpo.control_terms is empty: name at least one reward term, or null for the default.")
