"""The Flow-GRPO LightningModule: rollout -> decode -> reward -> group advantages -> policy update.

The module is the training loop's glue: the videos come from :mod:`world_r1.sampling`, the advantages' control
settings from :mod:`world_r1.grpo.control`, the update from :mod:`world_r1.grpo.update` (Flow-GRPO's clipped
surrogate) or :mod:`world_r1.grpo.forward_update` (AWM, DiffusionNFT: ``forward_rl``), and the per-step diagnostics
from :mod:`world_r1.grpo.diagnostics`, all of which run without it."""

from __future__ import annotations

import lightning as L
import torch

from world_r1.camera import CameraConfig
from world_r1.compat import collect_rng_states, set_rng_states
from world_r1.grpo.advantages import Advantages, gather_group_rewards
from world_r1.grpo.config import GRPOConfig, SamplingConfig
from world_r1.grpo.control import advantage_options, resolve_control_terms
from world_r1.grpo.diagnostics import GradientByTimestep, bucketed_backward, group_reward_stats
from world_r1.grpo.forward import ForwardRLConfig
from world_r1.grpo.forward_update import forward_update, needs_old_adapter, old_adapter_context
from world_r1.grpo.update import update_policy
from world_r1.policy import PolicyConfig, VideoSpec, WanPolicy, flow_sigmas
from world_r1.rewards import BrightnessReward, WeightedReward
from world_r1.sampling import Sampler
from world_r1.seeding import derive_seed


class WorldR1(L.LightningModule):
    """RL post-training of a Wan (2.1, 2.2; text- or image-to-video) with LoRA and composable rewards.

    One ``training_step`` takes the prompts of a batch (each repeated G times by the data module, a group may span
    processes), samples rollouts (``sampling.rollout``: the release's UniPC transitions, Flow-GRPO-Fast's SDE window,
    or a plain ODE for ``forward_rl``), decodes and scores them, normalises rewards within each prompt's group, and
    updates the LoRA: the clipped surrogate plus a KL to the base model, or AWM's / DiffusionNFT's forward loss.
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
        forward_rl: ForwardRLConfig | None = None,
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
            forward_rl: train by AWM or DiffusionNFT on the rollouts' clean latents (docs/forward_rl.md) instead of
                Flow-GRPO's recorded transitions (None).
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
        self.forward_rl = forward_rl
        _check_algorithm(self.sampling, forward_rl)
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints hold the LoRA only, not the frozen multi-GB base weights
        self.policy: WanPolicy | None = None
        self._nonfinite_in_a_row = 0
        self.steps_done = 0  # completed training steps (rollout + update), the clock of every periodic callback
        # checked now against the reward a run trains with; a module rebuilt from a checkpoint to sample has none
        self._control_terms = (
            resolve_control_terms(self.grpo, self.reward, decoupled_weights) if reward is not None else None
        )

    # ------------------------------------------------------------------------------------------------ setup
    def configure_model(self) -> None:
        if self.policy is not None:
            return
        self.policy = WanPolicy.from_config(self.policy_config)
        self.policy.check_video(self.video)
        if self.forward_rl is not None and needs_old_adapter(self.forward_rl):
            self.policy.add_old_adapter()  # before a checkpoint is loaded into it: resume restores the old policy

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
    @property
    def sampler(self) -> Sampler:
        """This run's videos (:class:`~world_r1.sampling.Sampler`), made from the module's current settings."""
        return Sampler(self.policy, self.video, self.sampling, self.camera, self.seed, self.device)

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        """Held-out videos for ``batch["prompts"]``: ODE with ``sampling.eval_steps``, one fixed seed per prompt id, so
        every evaluation of a run sees the same noise. Scoring is the evaluation callback's job (``callbacks/``).

        Returns ``{"videos": (B, F, 3, H, W), "prompts", "cameras", "prompt_ids", "seeds"}``.
        """
        sampler = self.sampler
        seeds = sampler.eval_seeds(batch["prompt_ids"])
        cameras = batch.get("cameras")
        videos = sampler.generate(batch["prompts"], seeds, cameras=cameras, images=batch.get("images"))
        return {
            "videos": videos,
            "prompts": batch["prompts"],
            "cameras": cameras,
            "prompt_ids": batch["prompt_ids"],
            "seeds": seeds,
        }

    test_step = validation_step

    # ---------------------------------------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> dict:
        """One Flow-GRPO step. Returns what callbacks receive as ``outputs`` in ``on_train_batch_end``: the decoded
        ``videos`` (B, F, 3, H, W), their ``prompts``, the ``rewards`` (``total`` and every term), the
        ``advantages`` (B,) and the ``step``."""
        prompts: list[str] = batch["prompts"]
        step: int = batch["step"]
        with old_adapter_context(self.policy, self.forward_rl):
            rollout, guidance = self.sampler.rollout(batch, self.global_rank)
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
        active = weights if weights is not None else getattr(self.reward, "weights", {})
        advantages = gather_group_rewards(
            rewards["total"].to(self.device),
            batch["group_ids"].to(self.device),
            self.all_gather,
            rank=self.global_rank,
            **advantage_options(self.grpo, self.control_terms, rewards, active, self.device),
        )
        stats, gradients = self._update(step, rollout, guidance, advantages.values)
        self._log_step(step, rewards, advantages, stats, batch["phase"], _diagnostics(advantages, gradients))
        self.steps_done = step + 1
        return {"videos": videos, "prompts": prompts, "rewards": rewards, "advantages": advantages.values, "step": step}

    def _update(self, step: int, rollout, guidance, advantages: torch.Tensor) -> tuple[dict, GradientByTimestep]:
        """Step ``step``'s policy update (Flow-GRPO's or ``forward_rl``'s), its gradients bucketed by noise level."""
        params, optimizer = self.policy.lora_parameters(), self.optimizers()
        if self.forward_rl is None:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "update", step, self.global_rank))
            with bucketed_backward(list(self.policy.experts().values()), params, self.manual_backward) as counted:
                backward, gradients = counted
                stats, self._nonfinite_in_a_row = update_policy(
                    self.policy, rollout, advantages, guidance, self.grpo, optimizer, backward, generator,
                    self._nonfinite_in_a_row,
                )  # fmt: skip
            return stats, gradients
        gradients = GradientByTimestep(params)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "forward", step, self.global_rank))
        schedule = flow_sigmas(self.sampling.train_steps, self.sampling.flow_shift)  # an "ode" rollout's own
        stats, self._nonfinite_in_a_row = forward_update(
            self.policy, rollout.final, schedule, advantages, guidance, self.forward_rl, self.grpo, optimizer,
            self.manual_backward, generator, self._nonfinite_in_a_row, self.global_step, gradients,
        )  # fmt: skip
        return stats, gradients

    @property
    def control_terms(self) -> list[str]:
        """The reward terms ``grpo.control_covariate`` controls, checked against the reward once."""
        if self._control_terms is None:
            self._control_terms = resolve_control_terms(self.grpo, self.reward, self.decoupled_weights)
        return self._control_terms

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

    def _log_step(
        self,
        step: int,
        rewards: dict[str, torch.Tensor],
        advantages,
        stats: dict[str, float],
        phase: str,
        diagnostics: dict[str, float],
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
        # the buckets trained differ from step to step (a Flow-GRPO window): logged directly, like the scored terms
        self._log_scored_terms(step, {f"diag/{name}": value for name, value in diagnostics.items()})
        terms = {f"reward/{name}": value.float().mean() for name, value in rewards.items() if name != "total"}
        terms |= {f"reward/{name}_std": value.float().std() for name, value in rewards.items() if value.numel() > 1}
        terms |= {f"reward_time/{name}": t for name, t in getattr(self.reward, "last_timings", {}).items()}
        self._log_scored_terms(step, terms)
        self.log("reward", rewards["total"].float().mean(), prog_bar=True, on_step=True, on_epoch=False)
        if "kl" in stats:
            self.log("kl", stats["kl"], prog_bar=True, on_step=True, on_epoch=False)


def _check_algorithm(sampling: SamplingConfig, forward_rl: ForwardRLConfig | None) -> None:
    """Refuse a rollout the chosen update cannot train on, naming the fix."""
    if forward_rl is not None:
        forward_rl.check_rollout(sampling.rollout)
    elif sampling.rollout == "ode":
        raise ValueError(
            "sampling.rollout 'ode' records no transitions for Flow-GRPO to train: use sampling.rollout sde or unipc, "
            "or set model.forward_rl (algorithm: awm or nft), which trains on the clean latents it keeps."
        )


def _diagnostics(advantages: Advantages, gradients: GradientByTimestep) -> dict[str, float]:
    """The step's ``diag/`` metrics: the groups' reward spread (over every process's samples, as the advantages saw
    them when they gathered them) and the gradient norm per noise-level bucket."""
    norms = {f"grad_norm_{bucket}": norm for bucket, norm in gradients.norms().items()}
    return group_reward_stats(*advantages.groups) | norms
