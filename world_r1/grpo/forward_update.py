"""The forward-process policy update (AWM, DiffusionNFT) beside Flow-GRPO's :func:`~world_r1.grpo.update.update_policy`.

It trains on the rollouts' clean latents only: each inner epoch draws ``forward_rl.timesteps_per_sample`` noise levels
per sample and fresh noise, noises the clean latents, and regresses the policy's velocity with the chosen loss of
:mod:`world_r1.grpo.forward`, in micro-batches, with the same gradient clipping and non-finite handling as Flow-GRPO
(:func:`~world_r1.grpo.update.apply_gradients`). After every optimizer step the old adapter (NFT's old policy, AWM's
EMA policy) follows the trained one by :meth:`ForwardRLConfig.decay`.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from world_r1.grpo.config import GRPOConfig
from world_r1.grpo.diagnostics import GradientByTimestep, sigma_bucket
from world_r1.grpo.forward import (
    ForwardRLConfig,
    awm_loss,
    nft_loss,
    nft_optimality,
    noised,
    sample_training_sigmas,
    velocity_kl,
)
from world_r1.grpo.update import Backward, PolicyUpdate, accumulate, apply_gradients
from world_r1.policy.guidance import Guidance
from world_r1.policy.wan import WanPolicy


def needs_old_adapter(config: ForwardRLConfig) -> bool:
    """Whether ``config``'s update reads an old policy: NFT always, AWM with an EMA penalty."""
    return config.algorithm == "nft" or config.old_kl_beta > 0


def forward_chunks(policy: WanPolicy, sigmas: torch.Tensor, order: torch.Tensor, size: int) -> list[torch.Tensor]:
    """The micro-batches of one row of training noise levels ``sigmas`` (B,): ``order``'s samples grouped by expert
    and noise-level bucket (so each runs on one transformer and its gradient counts to one bucket), at most ``size``
    each. Samples whose expert carries no LoRA are left out: there is nothing to train there."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i in order.tolist():
        sigma = float(sigmas[i])
        expert = policy.expert_name(sigma)
        if expert in policy.adapted:
            groups.setdefault((expert, sigma_bucket(sigma)), []).append(i)
    return [chunk for key in sorted(groups) for chunk in torch.tensor(groups[key]).split(size)]


def forward_loss(
    policy: WanPolicy,
    x0: torch.Tensor,
    noise: torch.Tensor,
    sigma: torch.Tensor,
    advantages: torch.Tensor,
    guidance: Guidance,
    config: ForwardRLConfig,
) -> dict[str, torch.Tensor]:
    """The loss of one micro-batch (``loss``, with gradient) and its detached statistics: AWM's advantage-weighted
    matching or DiffusionNFT's implicit-policy loss at ``noised(x0, noise, sigma)``, plus the velocity penalties."""
    image = guidance.image
    x_t = image.impose(noised(x0, noise, sigma))
    mask = image.free_mask(x0)
    v = guidance.velocity(policy, x_t, sigma)
    scaled = advantages.float().clamp(-config.adv_clip, config.adv_clip)
    v_old = None
    if needs_old_adapter(config):
        with torch.no_grad(), policy.adapter("old"):
            v_old = guidance.velocity(policy, x_t, sigma)
    if config.algorithm == "awm":
        weights = sigma.float() if config.awm_sigma_weight else None
        out = awm_loss(v, x0, noise, scaled / config.adv_clip, weights, config.awm_power, mask)
        stats = {"loss": out.loss, "matching": out.per_sample.mean(), "mse": out.mse.mean()}
    else:
        r = nft_optimality(scaled, config.adv_clip)
        adaptive = sigma if config.adaptive_weighting else None
        out = nft_loss(v, v_old, x0, noise, r, config.beta, adaptive, config.nft_scale, mask)
        stats = {"loss": out.loss, "positive": out.positive.mean(), "negative": out.negative.mean()}
        stats["old_deviation"] = out.old_deviation
    loss = out.loss
    if config.kl_beta > 0:
        with torch.no_grad(), policy.reference():
            v_ref = guidance.velocity(policy, x_t, sigma)
        kl = velocity_kl(v, v_ref, mask).mean()
        loss = loss + config.kl_beta * kl
        stats["kl"] = kl
    if config.algorithm == "awm" and config.old_kl_beta > 0:
        old_kl = velocity_kl(v, v_old, mask).mean()
        loss = loss + config.old_kl_beta * old_kl
        stats["old_kl"] = old_kl
    stats["loss"] = loss
    return stats


def forward_update(
    policy: WanPolicy,
    final: torch.Tensor,
    schedule: torch.Tensor,
    advantages: torch.Tensor,
    guidance: Guidance,
    config: ForwardRLConfig,
    grpo: GRPOConfig,
    optimizer: torch.optim.Optimizer,
    backward: Backward,
    generator: torch.Generator,
    nonfinite_in_a_row: int = 0,
    optimizer_steps: int = 0,
    gradients: GradientByTimestep | None = None,
) -> PolicyUpdate:
    """``grpo.inner_epochs`` forward-process updates of ``policy`` on the clean latents ``final`` (B, C, T, h, w)
    with ``advantages`` (B,).

    Each epoch draws the noise levels (``schedule``: the rollout's sigmas, for ``forward_rl.sigma_distribution:
    schedule``) and the noise from ``generator`` (CPU, seeded per step and process), trains each row of noise levels
    in micro-batches of ``grpo.micro_batch_size``, accumulating the gradient of the mean loss, and takes one
    optimizer step; then the old adapter, if any, takes its soft update with the decay of ``optimizer_steps`` (the
    steps taken before this call) plus those taken since. ``gradients`` counts each micro-batch's gradient to its
    noise-level bucket.
    """
    batch_size = final.shape[0]
    device = advantages.device
    rows = config.timesteps_per_sample
    totals: dict[str, float] = {}
    count = 0
    for _ in range(grpo.inner_epochs):
        sigmas = sample_training_sigmas(
            batch_size,
            generator,
            config.sigma_distribution,
            rows,
            config.sigma_shift,
            schedule,
            config.shared_sigmas,
        )
        order = torch.randperm(batch_size, generator=generator)
        skipped = False
        for j in range(rows):
            for index in forward_chunks(policy, sigmas[j], order, grpo.micro_batch_size):
                x0 = final[index.to(final.device)].float().to(device)
                noise = torch.randn(x0.shape, generator=generator).to(device)
                sigma = sigmas[j, index].to(device)
                stats = forward_loss(
                    policy, x0, noise, sigma, advantages[index.to(device)], guidance.select(index.to(device)), config
                )
                loss = stats["loss"]
                if not torch.isfinite(loss):
                    skipped = True
                    break
                scaled = loss * len(index) / (batch_size * rows)
                if gradients is None:
                    backward(scaled)
                else:
                    gradients.backward(scaled, sigma_bucket(float(sigma.max())), backward)
                count += accumulate(totals, stats, len(index))
            if skipped:
                break
        norm, nonfinite_in_a_row = apply_gradients(policy, optimizer, grpo, skipped, nonfinite_in_a_row)
        totals["grad_norm"] = norm * count
        if not skipped:
            optimizer_steps += 1
            if needs_old_adapter(config):
                policy.update_old(config.decay(optimizer_steps))
    return PolicyUpdate({name: value / max(count, 1) for name, value in totals.items()}, nonfinite_in_a_row)


def old_adapter_context(policy: WanPolicy, config: ForwardRLConfig | None):
    """Where rollouts are sampled: under the old adapter for DiffusionNFT (its old policy samples), else as is."""
    return policy.adapter("old") if config is not None and config.algorithm == "nft" else nullcontext()
