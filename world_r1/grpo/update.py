"""The Flow-GRPO policy update as plain functions: the loss of one recorded step, and the inner epochs of clipped
updates over a batch of rollouts.

They take the backward function and the optimizer instead of reaching for a Trainer (the module passes Lightning's
``manual_backward`` and its optimizer; a benchmark passes ``Tensor.backward`` and its own AdamW), so what a
benchmark times is the update that trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from world_r1.grpo.config import GRPOConfig
from world_r1.grpo.loss import GRPOLoss, grpo_loss
from world_r1.grpo.rollout import Rollout
from world_r1.policy.guidance import Guidance
from world_r1.policy.wan import WanPolicy

#: computes the gradients of a loss (``Tensor.backward``, or Lightning's ``manual_backward``)
Backward = Callable[[torch.Tensor], None]


class PolicyUpdate(NamedTuple):
    """``stats``: the mean of every :class:`~world_r1.grpo.loss.GRPOLoss` field over the trained samples and steps,
    and ``grad_norm``; ``nonfinite_in_a_row``: updates dropped in a row for a non-finite loss, this one included."""

    stats: dict[str, float]
    nonfinite_in_a_row: int


def step_loss(
    policy: WanPolicy,
    rollout: Rollout,
    j: int,
    index: torch.Tensor,
    advantages: torch.Tensor,
    guidance: Guidance,
    grpo: GRPOConfig,
) -> GRPOLoss:
    """The clipped surrogate plus KL of recorded step ``j`` for the samples ``index``: the step re-scored under the
    current policy (and, for the KL when ``grpo.beta > 0``, under the base model with the adapter disabled) by the
    rollout's kernel."""
    x = rollout.latents[index, j].float()
    x_next = rollout.next_latents[index, j].float()
    sigma, sigma_next = float(rollout.sigmas[j]), float(rollout.sigmas_next[j])
    model_sigma = float(rollout.model_sigmas[j])
    guidance = guidance.select(index)
    mask = guidance.image.free_mask(x)
    step = rollout.kernel.score(guidance.velocity(policy, x, model_sigma), x, sigma, sigma_next, x_next, mask)
    ref_mean = None
    if grpo.beta > 0:
        with torch.no_grad(), policy.reference():
            v_ref = guidance.velocity(policy, x, model_sigma)
            ref_mean = rollout.kernel.score(v_ref, x, sigma, sigma_next, x_next, mask).mean
    return grpo_loss(
        step.log_prob,
        rollout.log_probs[index, j].to(advantages.device),
        advantages[index],
        grpo.clip_range,
        beta=grpo.beta,
        mean=step.mean,
        ref_mean=ref_mean,
        std=step.std,
        mask=mask,
    )


def update_policy(
    policy: WanPolicy,
    rollout: Rollout,
    advantages: torch.Tensor,
    guidance: Guidance,
    grpo: GRPOConfig,
    optimizer: torch.optim.Optimizer,
    backward: Backward,
    generator: torch.Generator,
    nonfinite_in_a_row: int = 0,
) -> PolicyUpdate:
    """``grpo.inner_epochs`` clipped-surrogate updates of ``policy`` on ``rollout`` with ``advantages`` (B,): each
    epoch trains a random ``grpo.train_fraction`` of the recorded steps in micro-batches of
    ``grpo.micro_batch_size`` samples, accumulating the gradient of their mean loss, then takes one optimizer step.

    ``generator`` draws the steps and the sample order. An epoch with a non-finite loss drops its gradients instead
    of stepping (:func:`apply_gradients`); ``nonfinite_in_a_row`` is the count of such epochs before this call.
    """
    batch_size, recorded = rollout.log_probs.shape
    num_trained = max(1, math.ceil(grpo.train_fraction * recorded))
    totals: dict[str, float] = {}
    count = 0
    for _ in range(grpo.inner_epochs):
        steps = torch.randperm(recorded, generator=generator)[:num_trained].tolist()
        order = torch.randperm(batch_size, generator=generator)
        skipped = False
        for j in steps:
            for index in order.split(grpo.micro_batch_size):
                out = step_loss(policy, rollout, j, index.to(advantages.device), advantages, guidance, grpo)
                if not torch.isfinite(out.loss):
                    skipped = True
                    break
                backward(out.loss * len(index) / (batch_size * num_trained))
                count += accumulate(totals, out._asdict(), len(index))
            if skipped:
                break
        norm, nonfinite_in_a_row = apply_gradients(policy, optimizer, grpo, skipped, nonfinite_in_a_row)
        totals["grad_norm"] = norm * count
    return PolicyUpdate({name: value / max(count, 1) for name, value in totals.items()}, nonfinite_in_a_row)


def accumulate(totals: dict[str, float], values: dict[str, torch.Tensor], samples: int) -> int:
    """Add a micro-batch's statistics to ``totals``, weighted by its ``samples`` (the update reports their mean)."""
    for name, value in values.items():
        totals[name] = totals.get(name, 0.0) + float(value.detach()) * samples
    return samples


def apply_gradients(
    policy: WanPolicy, optimizer: torch.optim.Optimizer, grpo: GRPOConfig, skipped: bool, nonfinite_in_a_row: int
) -> tuple[float, int]:
    """Clip (``grpo.max_grad_norm``) and apply the accumulated gradients, or drop them if a loss was non-finite
    (``skipped``), raising once ``grpo.max_nonfinite_updates`` updates in a row were dropped. Returns the gradient
    norm (0 when dropped) and the new count of dropped updates in a row."""
    if skipped:
        optimizer.zero_grad(set_to_none=True)
        nonfinite_in_a_row += 1
        if nonfinite_in_a_row >= grpo.max_nonfinite_updates:
            raise RuntimeError(
                f"{nonfinite_in_a_row} policy updates in a row had a non-finite loss. Lower grpo.lr, "
                "check the rewards for NaN, or use policy.dtype fp32; raise grpo.max_nonfinite_updates to go on."
            )
        return 0.0, nonfinite_in_a_row
    norm = torch.nn.utils.clip_grad_norm_(policy.lora_parameters(), grpo.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm), 0
