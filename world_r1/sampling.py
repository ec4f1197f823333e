"""Generating videos with a policy, in one place: the starting noise and its camera injection, the guidance, the
deterministic videos of evaluation and ``sample``, and the recorded rollouts of a Flow-GRPO step.

A :class:`Sampler` bundles what every one of them reads (the policy, the video size, the sampling and camera settings
and the run's seed), so the training module, the evaluation, the ``sample`` and ``smoke`` commands and the benchmarks
all draw the same noise and run the same sampler. Every random draw is seeded by :func:`~world_r1.seeding.derive_seed`
from ``(seed, key, ...)``; the keys are ``"noise"`` (a training rollout's starting noise, per step and sample or
group), ``"window"`` (its SDE window, per step), ``"sde"`` (its SDE noise, per step and process), ``"eval"`` (held-out
videos, per prompt id) and ``"sample"`` (the ``sample`` command, per prompt index); the forward-process update draws
its noise levels and noise from ``"forward"`` (per step and process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from world_r1.camera import CameraConfig
from world_r1.camera.noise import StartingNoise, starting_noise
from world_r1.grpo.config import SamplingConfig
from world_r1.grpo.rollout import Rollout, sample_ode, sample_rollout, sample_unipc, sample_unipc_rollout
from world_r1.policy import VideoSpec, WanPolicy, flow_sigmas
from world_r1.policy.conditioning import ImageCondition, load_image
from world_r1.policy.guidance import Guidance
from world_r1.policy.schedule import wan_unipc_scheduler
from world_r1.seeding import derive_seed


@dataclass(frozen=True)
class CleanRollout:
    """Rollouts that keep only what the forward-process methods train on: ``final`` (B, C, T, h, w), the clean
    latents, and ``sigmas`` (N+1,), the schedule they were sampled along (where NFT draws its training levels)."""

    final: torch.Tensor
    sigmas: torch.Tensor


class StepRollout(NamedTuple):
    """One training step's rollouts and the guidance its update reuses: recorded transitions for Flow-GRPO, clean
    latents only (``sampling.rollout: ode``) for AWM and DiffusionNFT."""

    rollout: Rollout | CleanRollout
    guidance: Guidance


@dataclass(frozen=True)
class Sampler:
    """How a policy makes videos: ``video`` sized, sampled as ``sampling`` sets, with the camera conditioning of
    ``camera`` and every draw seeded from ``seed``. ``device``: where noise and indices go (default: the policy's)."""

    policy: WanPolicy
    video: VideoSpec
    sampling: SamplingConfig
    camera: CameraConfig
    seed: int = 0
    device: torch.device | None = None

    @property
    def target(self) -> torch.device:
        """The device the batch's tensors are made on."""
        return self.device if self.device is not None else self.policy.device

    # ------------------------------------------------------------------------------------------ conditioning
    def starting_noise(
        self,
        seeds: Sequence[int],
        prompts: Sequence[str] | None = None,
        cameras: Sequence[str | None] | None = None,
    ) -> StartingNoise:
        """Where rollouts start, one seed per sample, and the camera injection that follows them
        (:func:`world_r1.camera.noise.starting_noise`): with ``camera.enabled`` and ``prompts``, each sample's
        camera is that of its prompt (or of ``cameras[i]``, an explicit override)."""
        vae = self.policy.vae.config
        shape = self.video.latent_shape(vae.z_dim, vae.scale_factor_temporal, vae.scale_factor_spatial)
        return starting_noise(seeds, shape, prompts, self.camera, vae.scale_factor_temporal, cameras, self.target)

    def guidance(
        self, prompts: Sequence[str], images: Sequence[str | None] | None = None, scale: float | None = None
    ) -> Guidance:
        """The prompts' embeddings, the negative prompt's, CFG as ``sampling`` sets it (``scale`` overrides) and the
        image conditioning of ``images``."""
        return Guidance(
            self.policy.encode_prompts(prompts),
            self.policy.encode_negative(len(prompts)),
            self.sampling.guidance_scale if scale is None else scale,
            self.sampling.guidance_scale_2,
            self.image_condition(images),
        )

    def image_condition(self, images: Sequence[str | None] | None) -> ImageCondition | None:
        """The image conditioning of samples whose first frames are the pictures at ``images`` (None: text only);
        each distinct picture is encoded once (a group's G samples share one)."""
        if images is None or all(image is None for image in images):
            return None
        if any(image is None for image in images):
            raise ValueError("A batch mixes prompts with and without an image: give every prompt an image, or none.")
        unique = list(dict.fromkeys(images))
        video = self.video
        condition = self.policy.encode_images(
            [load_image(path) for path in unique], video.height, video.width, video.num_frames
        )
        return condition.select(torch.tensor([unique.index(image) for image in images], device=self.target))

    # ------------------------------------------------------------------------------------------------ seeds
    def noise_seeds(self, step: int, group_ids: torch.Tensor, sample_ids: torch.Tensor) -> list[int]:
        """The starting-noise seeds of training step ``step``: one per sample, or one per group with
        ``sampling.shared_noise``."""
        ids = group_ids if self.sampling.shared_noise else sample_ids
        return [derive_seed(self.seed, "noise", step, int(i)) for i in ids]

    def eval_seeds(self, prompt_ids: Sequence[int] | torch.Tensor) -> list[int]:
        """One fixed seed per held-out prompt id: every evaluation of a run sees the same noise."""
        return [derive_seed(self.seed, "eval", int(i)) for i in prompt_ids]

    def sample_seeds(self, count: int) -> list[int]:
        """The seeds of the ``sample`` command's prompts 0..count-1: reruns give the same videos."""
        return [derive_seed(self.seed, "sample", i) for i in range(count)]

    # ------------------------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        cameras: Sequence[str | None] | None = None,
        images: Sequence[str | None] | None = None,
    ) -> torch.Tensor:
        """Deterministic videos ``(B, F, 3, H, W)`` in [0, 1] for evaluation and the `sample` command, by
        ``sampling.eval_sampler`` (Euler or UniPC, ``sampling.eval_steps`` unless ``num_steps``) with the camera
        conditioning of training; ``cameras`` optionally overrides the camera motion of each prompt (used when
        ``camera.enabled``), ``images`` are the first frames of an image-to-video model."""
        steps, sampling = num_steps or self.sampling.eval_steps, self.sampling
        start = self.starting_noise(seeds, prompts, cameras)
        guidance = self.guidance(prompts, images, guidance_scale)
        if sampling.eval_sampler == "unipc":
            latents = sample_unipc(self.policy, start.noise, guidance, steps, sampling.flow_shift, start.injection)
        else:
            sigmas = flow_sigmas(steps, sampling.flow_shift)
            latents = sample_ode(self.policy, start.noise, guidance, sigmas, start.injection)
        return self.policy.decode(latents)

    def rollout(self, batch: dict, rank: int = 0) -> StepRollout:
        """The rollouts of one training step on ``batch`` (the data module's ``prompts``, ``step``, ``group_ids``,
        ``sample_ids``, optional ``images`` and ``cameras``) on process ``rank``: seeded starting noise with its
        camera injection, then ``sampling.rollout``: the SDE window of Flow-GRPO-Fast, the release's UniPC
        transitions, or ("ode") deterministic Euler keeping only the clean latents."""
        prompts: list[str] = batch["prompts"]
        step: int = batch["step"]
        sampling = self.sampling
        guidance = self.guidance(prompts, batch.get("images"))
        seeds = self.noise_seeds(step, batch["group_ids"], batch["sample_ids"])
        start = self.starting_noise(seeds, prompts, batch.get("cameras"))
        if sampling.rollout == "unipc":
            recorded = sampling.recorded_steps(self.policy.trainable_runs(unipc_model_sigmas(sampling)))
            rollout = sample_unipc_rollout(
                self.policy,
                start.noise,
                guidance,
                sampling.train_steps,
                sampling.flow_shift,
                recorded,
                sampling.store_dtype,
                start.injection,
            )
            return StepRollout(rollout, guidance)
        sigmas = flow_sigmas(sampling.train_steps, sampling.flow_shift)
        if sampling.rollout == "ode":
            final = sample_ode(self.policy, start.noise, guidance, sigmas, start.injection)
            return StepRollout(CleanRollout(final, sigmas), guidance)
        window_rng = torch.Generator().manual_seed(derive_seed(self.seed, "window", step))
        sde_rng = torch.Generator(self.target).manual_seed(derive_seed(self.seed, "sde", step, rank))
        sde_steps = sampling.sde_steps(window_rng, self.policy.trainable_runs(sigmas))
        rollout = sample_rollout(
            self.policy, start.noise, guidance, sigmas, sampling, sde_steps, sde_rng, start.injection
        )
        return StepRollout(rollout, guidance)


def unipc_model_sigmas(sampling: SamplingConfig) -> torch.Tensor:
    """The noise levels Wan's UniPC calls the transformer at in a training rollout (N+1,): which expert runs where."""
    scheduler = wan_unipc_scheduler(sampling.flow_shift)
    scheduler.set_timesteps(sampling.train_steps)
    return torch.cat([scheduler.timesteps.float() / scheduler.config.num_train_timesteps, torch.zeros(1)])
