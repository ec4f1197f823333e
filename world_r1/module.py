"""The Flow-GRPO LightningModule: rollout -> decode -> reward -> group advantages -> clipped policy update."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import lightning as L
import torch

from world_r1.camera import CameraConfig
from world_r1.camera.noise import StartingNoise, starting_noise
from world_r1.compat import collect_rng_states, set_rng_states
from world_r1.grpo.advantages import gather_group_rewards
from world_r1.grpo.config import GRPOConfig, SamplingConfig
from world_r1.grpo.loss import grpo_loss
from world_r1.grpo.rollout import Rollout, sample_ode, sample_rollout, sample_unipc, sample_unipc_rollout
from world_r1.policy import PolicyConfig, VideoSpec, WanPolicy, flow_sigmas
from world_r1.policy.conditioning import ImageCondition, load_image
from world_r1.policy.guidance import Guidance
from world_r1.policy.schedule import wan_unipc_scheduler
from world_r1.rewards import BrightnessReward, WeightedReward
from world_r1.seeding import derive_seed


class StepRollout(NamedTuple):
    """One Flow-GRPO step's rollouts and the guidance its update reuses."""

    rollout: Rollout
    guidance: Guidance


class WorldR1(L.LightningModule):
    """Flow-GRPO post-training of a Wan (2.1, 2.2; text- or image-to-video) with LoRA and composable rewards.

    One ``training_step`` takes the prompts of a batch (each repeated G times by the data module, a group may span
    processes), samples rollouts with SDE steps on a random window, decodes and scores them, normalises rewards
    within each prompt's group, and updates the LoRA with the clipped surrogate plus a KL to the base model.
    """

    def __init__(
        self,
        policy: PolicyConfig | None = None,
        video: VideoSpec | None = None,
        sampling: SamplingConfig | None = None,
        grpo: GRPOConfig | None = None,
        reward: WeightedReward | None = None,
        decoupled_weights: dict[str, float] | None = None,
        seed: int = 0,
        camera: CameraConfig | None = None,
    ) -> None:
        """
        Args:
            policy: the Wan model, dtype and LoRA.
            video: size of the generated videos.
            sampling: rollout sampler (steps, CFG, SDE window, noise level and schedule).
            grpo: the policy-update hyper-parameters.
            reward: the weighted reward terms of the main phase (a brightness reward if not given).
            decoupled_weights: reward weights for the decoupled phase (e.g. ``{quality: 1.0}``); main weights if None.
            seed: seeds every random draw as a function of (seed, step, group), so runs and resumes are reproducible.
            camera: implicit camera conditioning: initial noise warped along each prompt's camera motion (off if None).
        """
        super().__init__()
        self.save_hyperparameters(ignore=["reward"])
        self.policy_config = policy or PolicyConfig()
        self.video = video or VideoSpec()
        self.sampling = sampling or SamplingConfig()
        self.grpo = grpo or GRPOConfig()
        self.reward = reward or WeightedReward({"brightness": BrightnessReward()}, {"brightness": 1.0})
        self.decoupled_weights = decoupled_weights
        self.seed = seed
        self.camera = camera or CameraConfig()
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints hold the LoRA only, not the frozen multi-GB base weights
        self.policy: WanPolicy | None = None
        self._nonfinite_in_a_row = 0
        self.steps_done = 0  # completed training steps (rollout + update), the clock of every periodic callback
        # checked now against the reward a run trains with; a module rebuilt from a checkpoint to sample has none
        self._control_terms = self._resolve_control_terms() if reward is not None else None

    # ------------------------------------------------------------------------------------------------ setup
    def configure_model(self) -> None:
        if self.policy is not None:
            return
        self.policy = WanPolicy.from_config(self.policy_config)
        self.policy.check_video(self.video)

    def on_fit_start(self) -> None:
        """Refuse to train a LoRA that the trainer's precision plugin cast below fp32: its updates would round away."""
        low = sorted({str(p.dtype) for p in self.policy.lora_parameters() if p.dtype != torch.float32})
        if low:
            raise ValueError(
                f"The LoRA parameters are {', '.join(low)}, not float32: trainer.precision "
                f"{self.trainer.precision!r} cast the whole model. Use trainer.precision: 32-true (the policy keeps "
                "Wan in model.policy.dtype and autocasts itself) or bf16-mixed under FSDP."
            )
        data = getattr(self.trainer, "datamodule", None)
        if data is not None and hasattr(data, "check_images"):  # before the first rollout, naming the prompt line
            kind = self.policy.conditioning
            data.check_images(self.video.height, self.video.width, kind != "none", kind == "channels")
        if data is not None and hasattr(data, "check_cameras") and self.camera.enabled:
            data.check_cameras()
        if self.policy_config.offload_text_encoder:
            self.policy.offload_text_encoder(self._known_prompts())

    def _known_prompts(self) -> list[str]:
        """Every training and held-out prompt of the data module (none without one): what the cache must hold."""
        data = getattr(self.trainer, "datamodule", None)
        if data is None or not hasattr(data, "records"):
            return []
        return [r.text for r in data.records()]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.policy.lora_parameters(), lr=self.grpo.lr, weight_decay=self.grpo.weight_decay, betas=(0.9, 0.999)
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only the trainable (LoRA) tensors: the base model is re-loaded from ``policy.model``."""
        # by key name, not by parameter identity: under FSDP the parameters carry wrapper prefixes, the state dict not
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if "lora_" in k}
        checkpoint["world_r1"] = {
            "nonfinite_in_a_row": self._nonfinite_in_a_row,
            "steps_done": self.steps_done,
            # every draw of the algorithm is seeded from (seed, step); the global generators only feed LoRA dropout
            "rng": collect_rng_states(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("world_r1", {})
        self._nonfinite_in_a_row = state.get("nonfinite_in_a_row", 0)
        self.steps_done = state.get("steps_done", 0)
        if "rng" in state:
            set_rng_states(state["rng"])

    # ---------------------------------------------------------------------------------------------- sampling
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
        return starting_noise(seeds, shape, prompts, self.camera, vae.scale_factor_temporal, cameras, self.device)

    def guidance(
        self, prompts: Sequence[str], images: Sequence[str | None] | None = None, scale: float | None = None
    ) -> Guidance:
        """The prompts' embeddings, the negative prompt's, CFG as ``sampling`` sets it (``scale`` overrides) and the
        image conditioning of ``images``."""
        sampling = self.sampling
        return Guidance(
            self.policy.encode_prompts(prompts),
            self.policy.encode_negative(len(prompts)),
            sampling.guidance_scale if scale is None else scale,
            sampling.guidance_scale_2,
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
        return condition.select(torch.tensor([unique.index(image) for image in images], device=self.device))

    def _noise_seeds(self, batch: dict) -> list[int]:
        step = batch["step"]
        if self.sampling.shared_noise:
            return [derive_seed(self.seed, "noise", step, int(g)) for g in batch["group_ids"]]
        return [derive_seed(self.seed, "noise", step, int(s)) for s in batch["sample_ids"]]

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
        ``sampling.eval_sampler`` (Euler or UniPC) with the camera conditioning of training; ``cameras`` optionally
        overrides the camera motion of each prompt (used when ``camera.enabled``), ``images`` are the first frames of
        an image-to-video model."""
        steps, sampling = num_steps or self.sampling.eval_steps, self.sampling
        start = self.starting_noise(seeds, prompts, cameras)
        guidance = self.guidance(prompts, images, guidance_scale)
        if sampling.eval_sampler == "unipc":
            latents = sample_unipc(self.policy, start.noise, guidance, steps, sampling.flow_shift, start.injection)
        else:
            sigmas = flow_sigmas(steps, sampling.flow_shift)
            latents = sample_ode(self.policy, start.noise, guidance, sigmas, start.injection)
        return self.policy.decode(latents)

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        """Held-out videos for ``batch["prompts"]``: ODE with ``sampling.eval_steps``, one fixed seed per prompt id, so
        every evaluation of a run sees the same noise. Scoring is the evaluation callback's job (``callbacks/``).

        Returns ``{"videos": (B, F, 3, H, W), "prompts", "cameras", "prompt_ids", "seeds"}``.
        """
        seeds = [derive_seed(self.seed, "eval", int(i)) for i in batch["prompt_ids"]]
        cameras = batch.get("cameras")
        videos = self.generate(batch["prompts"], seeds, cameras=cameras, images=batch.get("images"))
        return {
            "videos": videos,
            "prompts": batch["prompts"],
            "cameras": cameras,
            "prompt_ids": batch["prompt_ids"],
            "seeds": seeds,
        }

    test_step = validation_step

    # ---------------------------------------------------------------------------------------------- training
    def sample_step(self, batch: dict) -> StepRollout:
        """The rollouts of one step on ``batch`` (the data module's ``prompts``, ``step``, ``group_ids``,
        ``sample_ids``, optional ``images`` and ``cameras``): seeded starting noise with its camera injection, then
        ``sampling.rollout``: the SDE window of Flow-GRPO-Fast, or the release's UniPC transitions."""
        prompts: list[str] = batch["prompts"]
        step: int = batch["step"]
        sampling = self.sampling
        guidance = self.guidance(prompts, batch.get("images"))
        start = self.starting_noise(self._noise_seeds(batch), prompts, batch.get("cameras"))
        if sampling.rollout == "unipc":
            runs = self.policy.trainable_runs(self._unipc_sigmas())
            rollout = sample_unipc_rollout(
                self.policy,
                start.noise,
                guidance,
                sampling.train_steps,
                sampling.flow_shift,
                sampling.recorded_steps(runs),
                sampling.store_dtype,
                start.injection,
            )
            return StepRollout(rollout, guidance)
        sigmas = flow_sigmas(sampling.train_steps, sampling.flow_shift)
        window_rng = torch.Generator().manual_seed(derive_seed(self.seed, "window", step))
        sde_rng = torch.Generator(self.device).manual_seed(derive_seed(self.seed, "sde", step, self.global_rank))
        sde_steps = sampling.sde_steps(window_rng, self.policy.trainable_runs(sigmas))
        rollout = sample_rollout(
            self.policy, start.noise, guidance, sigmas, sampling, sde_steps, sde_rng, start.injection
        )
        return StepRollout(rollout, guidance)

    def _unipc_sigmas(self) -> torch.Tensor:
        """The noise levels Wan's UniPC calls the transformer at in a training rollout (which expert runs where)."""
        scheduler = wan_unipc_scheduler(self.sampling.flow_shift)
        scheduler.set_timesteps(self.sampling.train_steps)
        return torch.cat([scheduler.timesteps.float() / scheduler.config.num_train_timesteps, torch.zeros(1)])

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        """One Flow-GRPO step. Returns what callbacks receive as ``outputs`` in ``on_train_batch_end``: the decoded
        ``videos`` (B, F, 3, H, W), their ``prompts``, the ``rewards`` (``total`` and every term), the
        ``advantages`` (B,) and the ``step``."""
        prompts: list[str] = batch["prompts"]
        step: int = batch["step"]
        rollout, guidance = self.sample_step(batch)
        videos = self.policy.decode(rollout.final)
        weights = self.decoupled_weights if batch["phase"] == "decoupled" and self.decoupled_weights else None
        rewards = self.reward(
            videos,
            prompts,
            weights=weights,
            cameras=batch.get("cameras", [None] * len(prompts)),
            prompt_ids=batch.get("prompt_ids"),
            phase=batch["phase"],
            step=step,
        )
        advantages = gather_group_rewards(
            rewards["total"].to(self.device),
            batch["group_ids"].to(self.device),
            self.all_gather,
            rank=self.global_rank,
            **self._adv_kwargs(rewards, weights),
        )
        stats = self._update(rollout, advantages.values, guidance, step)
        self._log_step(step, rewards, advantages, stats, batch["phase"])
        self.steps_done = step + 1
        return {"videos": videos, "prompts": prompts, "rewards": rewards, "advantages": advantages.values, "step": step}

    def _adv_kwargs(self, rewards: dict[str, torch.Tensor], weights: dict[str, float] | None) -> dict:
        """Advantage settings; with ``grpo.control_covariate``, the weighted control terms and the covariate."""
        kwargs = {"std_mode": self.grpo.std_mode, "clip": self.grpo.adv_clip}
        key = self.grpo.control_covariate
        if self._control_terms is None:
            self._control_terms = self._resolve_control_terms()
        active = weights if weights is not None else getattr(self.reward, "weights", {})
        terms = [name for name in self._control_terms if active.get(name, 0.0) and name in rewards]
        if key is None or not terms:  # e.g. the decoupled phase: no controlled term is scored
            return kwargs
        if key not in rewards:
            raise ValueError(
                f"grpo.control_covariate {key!r} is not a reward key of this step; the keys are {sorted(rewards)}."
            )
        controlled = sum(active[name] * rewards[name].float() for name in terms)
        return kwargs | {"controlled": controlled.to(self.device), "covariate": rewards[key].float().to(self.device)}

    def _resolve_control_terms(self) -> list[str]:
        """The reward terms ``grpo.control_covariate`` controls (none without it), checked against the reward at
        construction: a misnamed term or key, or a phase that scores a controlled term but not the covariate's term
        (weight 0 is not scored), fails before the first rollout instead of at the step that needs it."""
        key = self.grpo.control_covariate
        if key is None:
            return []
        terms = dict(getattr(self.reward, "terms", {}))
        names = list(self.grpo.control_terms or [name for name in ("epipolar", "depth") if name in terms])
        unknown = sorted(set(names) - set(terms))
        if unknown or not names:
            raise ValueError(
                f"grpo.control_terms names {unknown or 'no term'} of model.reward, whose terms are {sorted(terms)}: "
                "name the consistency terms to compare at equal grpo.control_covariate."
            )
        source, _, raw = key.partition("/")
        worst = getattr(terms.get(source), "worst", None)
        if source not in terms or (raw and worst is not None and raw not in worst):
            keys = sorted(worst) if worst is not None else []
            raise ValueError(
                f"grpo.control_covariate {key!r} is not a reward key: use '<term>' or '<term>/<key>' with a term of "
                f"model.reward ({sorted(terms)})" + (f" and a key of {source} ({keys})." if keys else ".")
            )
        main = getattr(self.reward, "weights", {})
        for phase, weights in (("main", main), ("decoupled", self.decoupled_weights or main)):
            scored = [name for name in names if weights.get(name, 0.0)]
            if scored and not weights.get(source, 0.0):
                raise ValueError(
                    f"The {phase} phase scores {scored} but not {source!r}, whose {key!r} is grpo.control_covariate: "
                    f"give {source} a weight in that phase (a term of weight 0 is not scored) or drop the control."
                )
        return names

    def _update(self, rollout: Rollout, advantages: torch.Tensor, guidance: Guidance, step: int) -> dict[str, float]:
        """Inner epochs of clipped-surrogate updates; one optimizer step per epoch, gradients accumulated over the
        samples and recorded steps (their mean)."""
        optimizer = self.optimizers()
        rng = torch.Generator().manual_seed(derive_seed(self.seed, "update", step, self.global_rank))
        batch_size, recorded = rollout.log_probs.shape
        num_trained = max(1, math.ceil(self.grpo.train_fraction * recorded))
        totals: dict[str, float] = {}
        count = 0
        for _ in range(self.grpo.inner_epochs):
            steps = torch.randperm(recorded, generator=rng)[:num_trained].tolist()
            order = torch.randperm(batch_size, generator=rng)
            skipped = False
            for j in steps:
                for index in order.split(self.grpo.micro_batch_size):
                    out = self._loss(rollout, j, index.to(self.device), advantages, guidance)
                    if not torch.isfinite(out.loss):
                        skipped = True
                        break
                    self.manual_backward(out.loss * len(index) / (batch_size * num_trained))
                    for name, value in out._asdict().items():
                        totals[name] = totals.get(name, 0.0) + float(value.detach()) * len(index)
                    count += len(index)
                if skipped:
                    break
            totals["grad_norm"] = self._optimizer_step(optimizer, skipped) * count
        return {name: value / max(count, 1) for name, value in totals.items()}

    def _loss(self, rollout: Rollout, j: int, index: torch.Tensor, advantages: torch.Tensor, guidance: Guidance):
        """The clipped surrogate plus KL of recorded step ``j`` for the samples ``index``: the step re-scored under
        the current policy (and, for the KL, under the base model with the adapter disabled) by the rollout's
        kernel."""
        x = rollout.latents[index, j].float()
        x_next = rollout.next_latents[index, j].float()
        sigma, sigma_next = float(rollout.sigmas[j]), float(rollout.sigmas_next[j])
        model_sigma = float(rollout.model_sigmas[j])
        guidance = guidance.select(index)
        mask = guidance.image.free_mask(x)
        step = rollout.kernel.score(guidance.velocity(self.policy, x, model_sigma), x, sigma, sigma_next, x_next, mask)
        ref_mean = None
        if self.grpo.beta > 0:
            with torch.no_grad(), self.policy.reference():
                v_ref = guidance.velocity(self.policy, x, model_sigma)
                ref_mean = rollout.kernel.score(v_ref, x, sigma, sigma_next, x_next, mask).mean
        return grpo_loss(
            step.log_prob,
            rollout.log_probs[index, j].to(self.device),
            advantages[index],
            self.grpo.clip_range,
            beta=self.grpo.beta,
            mean=step.mean,
            ref_mean=ref_mean,
            std=step.std,
            mask=mask,
        )

    def _log_scored_terms(self, step: int, metrics: dict[str, torch.Tensor | float]) -> None:
        """Each term's reward at the steps that scored it. The terms differ by phase (the decoupled phase scores its
        own), and Lightning logs a step metric's last value again at every later step of the epoch (a run is one
        endless epoch), where a term the phase skips would read as its last main-phase value; so these go to the
        loggers directly, on ``trainer.log_every_n_steps`` as Lightning logs the rest."""
        trainer = self.trainer
        every = trainer.log_every_n_steps
        if not every or not ((step + 1) % every == 0 or trainer.should_stop):
            return
        values = {name: float(value) for name, value in metrics.items()}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)

    def _optimizer_step(self, optimizer, skipped: bool) -> float:
        """Clip and apply the accumulated gradients, or drop them if a loss was non-finite; returns the grad norm."""
        if skipped:
            optimizer.zero_grad(set_to_none=True)
            self._nonfinite_in_a_row += 1
            if self._nonfinite_in_a_row >= self.grpo.max_nonfinite_updates:
                raise RuntimeError(
                    f"{self._nonfinite_in_a_row} policy updates in a row had a non-finite loss. Lower grpo.lr, "
                    "check the rewards for NaN, or use policy.dtype fp32; raise grpo.max_nonfinite_updates to go on."
                )
            return 0.0
        self._nonfinite_in_a_row = 0
        norm = torch.nn.utils.clip_grad_norm_(self.policy.lora_parameters(), self.grpo.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def _log_step(
        self, step: int, rewards: dict[str, torch.Tensor], advantages, stats: dict[str, float], phase: str
    ) -> None:
        metrics = {
            "reward/total": rewards["total"].float().mean(),
            "adv/mean": advantages.values.mean(),
            "adv/abs_mean": advantages.values.abs().mean(),
            "adv/nonfinite_rewards": float(advantages.num_nonfinite),
            "reward/total_group_std": advantages.group_std,  # within-group spread: what the advantages are made of
            "train/phase_decoupled": float(phase == "decoupled"),
            "train/lr": self.optimizers().param_groups[0]["lr"],
            "train/skipped_updates": float(self._nonfinite_in_a_row),  # dropped updates in a row (non-finite loss)
        }
        metrics |= {f"train/{name}": value for name, value in stats.items()}
        self.log_dict(metrics, prog_bar=False, on_step=True, on_epoch=False)
        terms = {f"reward/{name}": value.float().mean() for name, value in rewards.items() if name != "total"}
        terms |= {f"reward/{name}_std": value.float().std() for name, value in rewards.items() if value.numel() > 1}
        terms |= {f"reward_time/{name}": t for name, t in getattr(self.reward, "last_timings", {}).items()}
        self._log_scored_terms(step, terms)
        self.log("reward", rewards["total"].float().mean(), prog_bar=True, on_step=True, on_epoch=False)
        if "kl" in stats:
            self.log("kl", stats["kl"], prog_bar=True, on_step=True, on_epoch=False)
