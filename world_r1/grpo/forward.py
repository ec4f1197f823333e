"""Forward-process RL: AWM and DiffusionNFT, which train on the rollouts' clean samples by flow matching.

Flow-GRPO scores recorded denoising transitions under a Gaussian policy. These two methods need none of that: each
rollout hands over only its clean latents ``x0`` (and its conditioning); a training step draws a noise level
``sigma`` and fresh noise ``eps``, builds ``x_sigma = (1 - sigma) x0 + sigma eps`` (the project's convention,
:mod:`world_r1.grpo.sde`) and regresses the velocity on ``eps - x0``, the pretraining loss, with the reward folded in:

* **AWM**, Advantage Weighted Matching (Xue et al., arXiv 2509.25050; code: github.com/scxue/
  advantage_weighted_matching, ``scripts/train_sd3_awm.py``): the matching error of each sample multiplied by its
  advantage, so high-reward samples are fitted and low-reward ones pushed away. The released configs clip ``A`` to
  ``[-5, 5]`` and divide by 5, weight the error by ``sigma`` and flatten it with a power 0.25 (their "ghuber"), and
  add ``||v - v_ref||^2`` penalties to the base model and to an EMA of the policy.
* **DiffusionNFT** (Zheng et al., arXiv 2509.16117; code: github.com/NVlabs/DiffusionNFT, ``scripts/train_nft_sd3.py``,
  read here through forks whose loss code agrees line for line): implicit positive and negative policies
  ``v+ = (1 - beta) v_old + beta v``, ``v- = (1 + beta) v_old - beta v`` around a slowly moving old policy, and
  ``r ||v+ - (eps - x0)||^2 + (1 - r) ||v- - (eps - x0)||^2`` with ``r`` in [0, 1] the reward as an optimality
  probability. The released code measures both errors in x0-space with an adaptive per-sample weight, scales the
  loss by ``adv_clip / beta``, and adds ``1e-4 ||v - v_ref||^2`` to the base model.

All functions are pure and cast to float32: the latents may be stored in bf16, and a squared error of bf16 velocities
loses the small differences the reward signal lives in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from world_r1.grpo.sde import _per_sample, per_sample_mean
from world_r1.settings import check_choice

ForwardAlgorithm = Literal["awm", "nft"]
SigmaDistribution = Literal["uniform", "logit_normal", "schedule"]
#: the values of ``sampling.rollout`` a forward-process method may be handed; "ode" is a plain deterministic sampler
RolloutKind = Literal["sde", "unipc", "ode"]

_NFT_MIN_WEIGHT = 1e-5  # DiffusionNFT's floor on the adaptive weight (a sample predicted exactly gets no 1/0)
_AWM_POWER_EPS = 1e-10  # AWM's "ghuber": ((mse + eps)^p - eps^p) / p, zero at mse = 0 and smooth for p < 1
_MIN_CONTINUOUS_SIGMA = 0.01  # AWM clamps its continuous draws here: at sigma = 0 there is nothing to denoise


def noised(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``x_sigma = (1 - sigma) x0 + sigma noise`` in float32: the forward process both methods train on.

    Args:
        x0, noise: ``(B, *)`` of one shape, the clean latents and standard normal noise.
        sigma: float or ``(B,)`` in [0, 1]; 1 is pure noise (the sampler's start), 0 the data.
    """
    if x0.shape != noise.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} must have one shape")
    s = _per_sample(sigma, x0)
    return (1 - s) * x0.float() + s * noise.float()


def flow_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity ``noise - x0`` (float32) that a rectified-flow model predicts at every noise level of
    :func:`noised`: Wan's training target, so both losses below are its pretraining loss on the policy's samples."""
    if x0.shape != noise.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} must have one shape")
    return noise.float() - x0.float()


def _check_batch(name: str, values: torch.Tensor, like: torch.Tensor) -> None:
    if values.shape != (like.shape[0],):
        raise ValueError(f"{name} must be ({like.shape[0]},), one per sample, got {tuple(values.shape)}")


# ------------------------------------------------------------------------------------------------------------ AWM
class AWMLoss(NamedTuple):
    """``loss`` carries the gradient; ``per_sample`` (B,) is each sample's weighted matching error before its
    advantage and ``mse`` (B,) its plain flow-matching error (both detached, for logging)."""

    loss: torch.Tensor
    per_sample: torch.Tensor
    mse: torch.Tensor


def awm_loss(
    v_pred: torch.Tensor,
    x0: torch.Tensor,
    noise: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor | None = None,
    power: float = 1.0,
    mask: torch.Tensor | None = None,
) -> AWMLoss:
    """``mean_i A_i w_i m_i`` with ``m_i`` the flow-matching error of sample i: AWM's advantage-weighted matching.

    With every ``A_i = 1``, no weights and ``power = 1`` this is exactly the flow-matching loss on these samples and
    noise levels; a negative advantage turns the pull toward the sample into a push away from it. The official code
    writes it as a PPO ratio of ``exp(-m)`` with clip range 1 and one optimizer step per rollout batch, where the
    ratio is 1 and its gradient is this one; with more than one update per batch the two differ.

    Args:
        v_pred: ``(B, *)`` the policy's velocity at ``noised(x0, noise, sigma)`` (with grad).
        x0, noise: ``(B, *)`` the rollouts' clean latents and the training noise.
        advantages: ``(B,)`` (detached here); the official code feeds ``clip(A, -5, 5) / 5``.
        weights: ``(B,)`` optional time weights ``w_i``; the released configs use ``sigma_i``.
        power: ``p`` in (0, 1]: ``m`` becomes ``((m + 1e-10)^p - 1e-10^p) / p`` (the released "ghuber", p = 0.25),
            which damps samples the model fits badly; 1 keeps the plain squared error.
        mask: broadcastable to ``x0``: 1 on generated elements, 0 on held ones (a conditioning first frame).
    """
    if v_pred.shape != x0.shape:
        raise ValueError(f"v_pred {tuple(v_pred.shape)} and x0 {tuple(x0.shape)} must have one shape")
    _check_batch("advantages", advantages, x0)
    if not 0 < power <= 1:
        raise ValueError(f"AWM power must be in (0, 1], got {power}")
    mse = per_sample_mean((v_pred.float() - flow_target(x0, noise)) ** 2, mask)
    matching = mse if power == 1 else ((mse + _AWM_POWER_EPS) ** power - _AWM_POWER_EPS**power) / power
    if weights is not None:
        _check_batch("weights", weights, x0)
        matching = matching * weights.float()
    loss = (advantages.detach().float() * matching).mean()
    return AWMLoss(loss, matching.detach(), mse.detach())


# ----------------------------------------------------------------------------------------------------- DiffusionNFT
class NFTLoss(NamedTuple):
    """``loss`` carries the gradient; ``positive`` / ``negative`` (B,) are the two branches' errors and
    ``old_deviation`` the mean ``(v - v_old)^2`` (how far the update has moved from the old policy), all detached."""

    loss: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    old_deviation: torch.Tensor


def nft_optimality(advantages: torch.Tensor, adv_clip: float = 5.0) -> torch.Tensor:
    """``r = 1/2 + 1/2 clip(A / adv_clip, -1, 1)``: the reward as DiffusionNFT's optimality probability in [0, 1].

    The paper writes ``r = 1/2 + 1/2 clip((reward - E reward) / Z, -1, 1)``; the released code takes the
    group-normalised advantage ``A``, clips it to ``[-5, 5]`` and divides by 5, so ``Z`` is five group stds. A sample
    at its group's mean gets 0.5: it pulls neither way.
    """
    if adv_clip <= 0:
        raise ValueError(f"adv_clip must be > 0, got {adv_clip}")
    return (0.5 + 0.5 * advantages.float().clamp(-adv_clip, adv_clip) / adv_clip).clamp(0.0, 1.0)


def nft_policies(v_theta: torch.Tensor, v_old: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DiffusionNFT's implicit policies ``v+ = (1 - beta) v_old + beta v`` and ``v- = (1 + beta) v_old - beta v``.

    They sit on either side of ``v_old`` and move oppositely with ``v``: fitting the positive one to good samples and
    the negative one to bad samples both move ``v`` the same way, toward the good and away from the bad. ``v_old`` is
    detached (the old policy is not trained).
    """
    if v_theta.shape != v_old.shape:
        raise ValueError(f"v_theta {tuple(v_theta.shape)} and v_old {tuple(v_old.shape)} must have one shape")
    old = v_old.detach().float()
    v = v_theta.float()
    return (1 - beta) * old + beta * v, (1 + beta) * old - beta * v


def _nft_branch(v: torch.Tensor, target: torch.Tensor, sigma, mask) -> torch.Tensor:
    """One branch's (B,) error: plain ``||v - target||^2``, or with ``sigma`` the released code's adaptive form
    ``mean(e^2) / sg(mean|e|)`` of the x0-space error ``e = x0_pred - x0 = -sigma (v - target)``."""
    if sigma is None:
        return per_sample_mean((v - target) ** 2, mask)
    err = _per_sample(sigma, v) * (v - target)
    with torch.no_grad():  # the official code forms this weight in float64, without gradient
        weight = per_sample_mean(err.double().abs(), mask).clamp(min=_NFT_MIN_WEIGHT).float()
    return per_sample_mean(err**2, mask) / weight


def nft_loss(
    v_theta: torch.Tensor,
    v_old: torch.Tensor,
    x0: torch.Tensor,
    noise: torch.Tensor,
    r: torch.Tensor,
    beta: float,
    sigma: torch.Tensor | float | None = None,
    scale: float = 1.0,
    mask: torch.Tensor | None = None,
) -> NFTLoss:
    """``scale * mean_i [r_i ||v+_i - (eps - x0)_i||^2 + (1 - r_i) ||v-_i - (eps - x0)_i||^2]``: DiffusionNFT.

    At ``v = v_old`` its gradient in ``v`` is ``2 beta (2r - 1) (v_old - target)``: toward the sample for
    ``r > 1/2``, away below. Its minimiser per sample is ``v_old + (2r - 1) / beta (target - v_old)``.

    Args:
        v_theta: ``(B, *)`` the trained policy's velocity at ``noised(x0, noise, sigma)`` (with grad).
        v_old: ``(B, *)`` the old (sampling) policy's velocity at the same point (detached here).
        x0, noise: ``(B, *)`` the clean latents and the training noise.
        r: ``(B,)`` optimality probabilities (:func:`nft_optimality`).
        beta: > 0, how far the implicit policies lie from ``v_old`` (the released configs: 1.0, 0.1 for OCR and the
            multi-reward run).
        sigma: the noise levels (float or ``(B,)``): given, each branch uses the released code's adaptive weighting
            (:func:`_nft_branch`); None, the paper's plain squared errors.
        scale: the released code multiplies by ``adv_clip / beta`` (:attr:`ForwardRLConfig.nft_scale`), which keeps
            the gradient's size independent of beta.
        mask: broadcastable to ``x0``: 1 on generated elements, 0 on held ones.
    """
    if v_theta.shape != x0.shape:
        raise ValueError(f"v_theta {tuple(v_theta.shape)} and x0 {tuple(x0.shape)} must have one shape")
    _check_batch("r", r, x0)
    if beta <= 0:
        raise ValueError(f"NFT beta must be > 0, got {beta}")
    target = flow_target(x0, noise)
    v_pos, v_neg = nft_policies(v_theta, v_old, beta)
    positive = _nft_branch(v_pos, target, sigma, mask)
    negative = _nft_branch(v_neg, target, sigma, mask)
    r = r.detach().float()
    loss = scale * (r * positive + (1 - r) * negative).mean()
    with torch.no_grad():
        old_deviation = ((v_theta.float() - v_old.float()) ** 2).mean()
    return NFTLoss(loss, positive.detach(), negative.detach(), old_deviation)


# ------------------------------------------------------------------------------------------------------ shared parts
def velocity_kl(v: torch.Tensor, v_ref: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) ``mean (v - v_ref)^2``: the regulariser both official codes add (``v_ref`` from the base model, for AWM
    also from an EMA of the policy); up to a constant, the KL of two Euler-Gaussian steps of one std."""
    if v.shape != v_ref.shape:
        raise ValueError(f"v {tuple(v.shape)} and v_ref {tuple(v_ref.shape)} must have one shape")
    return per_sample_mean((v.float() - v_ref.detach().float()) ** 2, mask)


def old_policy_decay(step: int, rate: float, cap: float, delay: int = 0) -> float:
    """The decay of the soft update ``old <- decay * old + (1 - decay) * current``, after ``step`` optimizer steps:
    0 for the first ``delay`` steps (old = current: on-policy), then ``min(rate * (step - delay), cap)``.

    DiffusionNFT: ``rate=0.001, cap=0.5`` (default) or ``rate=0.0075, cap=0.999, delay=75`` (OCR); AWM's EMA
    policy: ``rate=0.001, cap=0.3``. A growing decay lets the old policy lag more once training has settled.
    """
    if step < delay:
        return 0.0
    return min(rate * (step - delay), cap)


def _shift(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    # Wan's flow shift, as world_r1.policy.schedule.shift_sigmas; not imported, since world_r1.policy loads diffusers
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def _stratified_uniform(num: int, columns: int, generator: torch.Generator) -> torch.Tensor:
    """(num, columns): each column holds one draw from every stratum ``[j/num, (j+1)/num)``, in random order, so a
    sample's training noise levels cover the range instead of clustering (AWM's stratified draw)."""
    u = (torch.arange(num, dtype=torch.float64)[:, None] + torch.rand(num, columns, generator=generator)) / num
    order = torch.argsort(torch.rand(num, columns, generator=generator), dim=0)
    return torch.gather(u, 0, order)


def sample_training_sigmas(
    batch: int,
    generator: torch.Generator,
    distribution: str = "logit_normal",
    num: int = 1,
    shift: float = 3.0,
    schedule: torch.Tensor | None = None,
    shared: bool = False,
) -> torch.Tensor:
    """The noise levels a training step uses: ``(num, batch)`` float32 on the CPU, row j the sigmas of every
    sample's j-th training timestep.

    Args:
        batch: number of samples.
        generator: the (seeded) source of the draw, so every process and a resumed run draw alike.
        distribution: "logit_normal": ``sigmoid(N(0, 1))`` then Wan's ``shift`` (SD3's pretraining density, AWM's
            ``logit_normal`` option); "uniform": ``U(0, 1)`` then the shift; both stratified over the ``num`` rows
            and clamped to >= 0.01 as AWM does. "schedule": ``num`` distinct noise levels of the sampler's own
            ``schedule`` (its sigmas, ending at 0, which is left out), as DiffusionNFT trains on 9 of its 10 steps.
        num: training timesteps per sample.
        shift: Wan's flow shift for the continuous distributions (3.0 at 480p, 5.0 at 720p).
        schedule: ``(S + 1,)`` the rollout's sigmas from 1 to 0 (``flow_sigmas(train_steps, flow_shift)``); only
            for "schedule", whose values are already shifted.
        shared: one draw per row for the whole batch (AWM's choice): every sample of a row is denoised by one
            expert of a two-expert Wan, which :meth:`WanPolicy.velocity` requires.
    """
    check_choice("sigma distribution", distribution, SigmaDistribution)
    if batch < 1 or num < 1:
        raise ValueError(f"need batch >= 1 and num >= 1, got batch={batch}, num={num}")
    columns = 1 if shared else batch
    if distribution == "schedule":
        if schedule is None:
            raise ValueError("sigma distribution 'schedule' needs the rollout's schedule (flow_sigmas(...)).")
        levels = schedule.float().flatten()
        levels = levels[levels > 0]
        if num > len(levels):
            raise ValueError(
                f"{num} training timesteps per sample from a schedule of {len(levels)} noise levels: lower "
                "forward_rl.timesteps_per_sample or raise sampling.train_steps."
            )
        picks = torch.argsort(torch.rand(columns, len(levels), generator=generator), dim=1)[:, :num]
        sigmas = levels[picks].T
    else:
        if shift <= 0:
            raise ValueError(f"flow shift must be > 0, got {shift}")
        u = _stratified_uniform(num, columns, generator)
        if distribution == "logit_normal":
            u = torch.sigmoid(torch.special.ndtri(u.clamp(1e-7, 1 - 1e-7)))
        sigmas = _shift(u, shift).clamp(_MIN_CONTINUOUS_SIGMA, 1.0).float()
    return sigmas.expand(num, batch).contiguous() if shared else sigmas


# ------------------------------------------------------------------------------------------------------------ config
@dataclass
class ForwardRLConfig:
    """A forward-process update in place of Flow-GRPO's. Defaults: DiffusionNFT's released SD3.5 values; the AWM
    ones are in docs/forward_rl.md."""

    algorithm: ForwardAlgorithm = "nft"
    """which method: DiffusionNFT ("nft") or Advantage Weighted Matching ("awm")"""
    beta: float = 1.0
    """NFT's distance of the implicit policies from the old one (> 0; released: 1.0, and 0.1 for OCR)"""
    timesteps_per_sample: int = 9
    """noise levels each clean sample is trained at per update (NFT: 9 of its 10 sampling steps; AWM: 6)"""
    sigma_distribution: SigmaDistribution = "schedule"
    """where those noise levels come from: "schedule" (the rollout's own sigmas, NFT), "logit_normal" or "uniform"."""
    sigma_shift: float = 3.0
    """Wan's flow shift applied to "logit_normal" and "uniform" draws (AWM: 3.0)"""
    shared_sigmas: bool = False
    """one noise level per row for the whole batch (AWM); required for a two-expert Wan"""
    adv_clip: float = 5.0
    """advantages are clipped to [-adv_clip, adv_clip] and divided by it (NFT's r, AWM's advantage scale)"""
    adaptive_weighting: bool = True
    """NFT: the released code's adaptive x0-space weighting (False: the paper's plain squared errors)"""
    awm_sigma_weight: bool = True
    """AWM: weight each sample's error by its sigma (the released "ghuber" and "t" weightings)"""
    awm_power: float = 0.25
    """AWM: the power p of ((mse + 1e-10)^p - 1e-10^p) / p (released: 0.25; 1 is the plain error)"""
    kl_beta: float = 1e-4
    """weight of mean (v - v_ref)^2 to the LoRA-disabled base model (NFT: 1e-4; AWM: 0.003, or 1e-4 for PickScore)"""
    old_kl_beta: float = 0.0
    """weight of mean (v - v_old)^2 to the old (EMA) policy (AWM: 1.0; NFT uses the old policy in its loss instead)"""
    old_decay_rate: float = 0.001
    """the old policy's soft-update decay grows by this per optimizer step (:func:`old_policy_decay`)"""
    old_decay_max: float = 0.5
    """... up to this cap (NFT: 0.5; AWM's EMA: 0.3)"""
    old_decay_delay: int = 0
    """... after this many steps of decay 0 (NFT's OCR run: 75)"""

    def __post_init__(self) -> None:
        check_choice("forward_rl.algorithm", self.algorithm, ForwardAlgorithm)
        check_choice("forward_rl.sigma_distribution", self.sigma_distribution, SigmaDistribution)
        if self.beta <= 0:
            raise ValueError(f"forward_rl.beta must be > 0 (the released NFT uses 1.0 or 0.1), got {self.beta}.")
        if self.timesteps_per_sample < 1:
            raise ValueError(f"forward_rl.timesteps_per_sample must be >= 1, got {self.timesteps_per_sample}.")
        if self.adv_clip <= 0 or self.sigma_shift <= 0:
            raise ValueError("forward_rl.adv_clip and forward_rl.sigma_shift must be > 0.")
        if not 0 < self.awm_power <= 1:
            raise ValueError(f"forward_rl.awm_power must be in (0, 1] (released: 0.25), got {self.awm_power}.")
        if self.kl_beta < 0 or self.old_kl_beta < 0:
            raise ValueError("forward_rl.kl_beta and forward_rl.old_kl_beta must be >= 0.")
        if not 0 <= self.old_decay_max < 1 or self.old_decay_rate < 0 or self.old_decay_delay < 0:
            raise ValueError(
                "forward_rl.old_decay_max must be in [0, 1) and old_decay_rate, old_decay_delay >= 0: with decay 1 the "
                "old policy would never follow the trained one."
            )

    def check_rollout(self, rollout: str, clean_samples: bool = True) -> None:
        """Refuse rollouts this update cannot use: ``rollout`` is ``sampling.rollout``; ``clean_samples`` whether the
        rollouts hand over their final clean latents (``Rollout.final``), the only thing both methods train on."""
        check_choice("sampling.rollout", rollout, RolloutKind)
        if not clean_samples:
            raise ValueError(
                f"forward_rl.algorithm {self.algorithm!r} trains on the rollouts' clean latents, and these rollouts "
                "keep none: record Rollout.final."
            )
        if self.algorithm == "nft" and rollout != "ode":
            what = "an SDE window adds noise and records" if rollout == "sde" else "the release's UniPC rollout records"
            raise ValueError(
                f"forward_rl.algorithm 'nft' trains on clean samples of a deterministic sampler; sampling.rollout "
                f"{rollout!r}: {what} transitions it never uses: use sampling.rollout: ode."
            )

    @property
    def nft_scale(self) -> float:
        """The released DiffusionNFT loss scale ``adv_clip / beta``."""
        return self.adv_clip / self.beta

    def decay(self, step: int) -> float:
        """The old policy's soft-update decay after ``step`` optimizer steps."""
        return old_policy_decay(step, self.old_decay_rate, self.old_decay_max, self.old_decay_delay)
