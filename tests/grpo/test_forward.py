"""AWM and DiffusionNFT (world_r1.grpo.forward): formulas against hand-worked numbers, the config's refusals, and a toy
two-mode flow whose sampled reward both methods raise."""

import pytest
import torch
import torch.nn.functional as F

from world_r1.grpo.advantages import group_advantages
from world_r1.grpo.forward import (
    ForwardRLConfig,
    awm_loss,
    flow_target,
    nft_loss,
    nft_optimality,
    nft_policies,
    noised,
    old_policy_decay,
    sample_training_sigmas,
    velocity_kl,
)
from world_r1.grpo.sde import ode_step
from world_r1.policy.schedule import flow_sigmas


# ------------------------------------------------------------------------------------------------ forward process
def test_noised_runs_from_data_to_noise_along_the_flow_target():
    x0, noise = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    torch.testing.assert_close(noised(x0, noise, 0.0), x0)
    torch.testing.assert_close(noised(x0, noise, 1.0), noise)
    # the path is straight: an Euler step with the target velocity lands exactly on the next noise level
    sigma, sigma_next = torch.tensor([0.9, 0.5, 0.3]), torch.tensor([0.6, 0.1, 0.0])
    stepped = ode_step(flow_target(x0, noise), noised(x0, noise, sigma), sigma, sigma_next)
    torch.testing.assert_close(stepped, noised(x0, noise, sigma_next))


# ------------------------------------------------------------------------------------------------------------ AWM
def test_awm_with_unit_advantages_is_the_flow_matching_loss():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 6)
    x0, noise, sigma = torch.randn(4, 6), torch.randn(4, 6), torch.tensor([0.1, 0.4, 0.7, 1.0])
    out = awm_loss(model(noised(x0, noise, sigma)), x0, noise, torch.ones(4))
    out.loss.backward()
    ours = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # the pretraining loss written out independently: x_t = (1 - t) x0 + t eps, target eps - x0
    t = sigma[:, None]
    reference = F.mse_loss(model((1 - t) * x0 + t * noise), noise - x0)
    reference.backward()
    assert out.loss.item() == pytest.approx(reference.item(), rel=1e-6)
    for got, want in zip(ours, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("power, weighted", [(1.0, False), (0.25, True)])
def test_awm_negative_advantages_flip_the_gradient(power, weighted):
    x0, noise = torch.randn(2, 8), torch.randn(2, 8)
    weights = torch.tensor([0.3, 0.8]) if weighted else None
    grads = []
    for sign in (1.0, -1.0):
        v = torch.randn(2, 8, generator=torch.Generator().manual_seed(1)).requires_grad_()
        awm_loss(v, x0, noise, sign * torch.tensor([0.5, 2.0]), weights, power).loss.backward()
        grads.append(v.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], -grads[0])
    # with a positive advantage, a small step against the gradient moves v toward the target
    v = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    before = (v - flow_target(x0, noise)).norm()
    assert (v - 0.01 * grads[0] - flow_target(x0, noise)).norm() < before


def test_awm_weights_and_power_by_hand():
    x0, noise = torch.zeros(2, 2), torch.zeros(2, 2)  # target 0, so the error is v itself
    v = torch.tensor([[4.0, -4.0], [1.0, 1.0]])  # per-sample mse 16 and 1
    out = awm_loss(v, x0, noise, torch.tensor([1.0, -1.0]), torch.tensor([0.5, 1.0]), power=0.5)
    # ghuber with p = 1/2: (m^0.5 - 0) / 0.5 -> 8 and 2; weighted 4 and 2; advantages +1, -1: mean(4, -2) = 1
    torch.testing.assert_close(out.mse, torch.tensor([16.0, 1.0]))
    torch.testing.assert_close(out.per_sample, torch.tensor([4.0, 2.0]), atol=1e-4, rtol=0)
    assert out.loss.item() == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------------------------------- DiffusionNFT
# two samples of three elements; beta = 1/2
X0 = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
NOISE = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # target = noise - x0 = [[-1, 1, 2], [1, -2, 0]]
V_OLD = torch.tensor([[0.0, 1.0, 1.0], [1.0, -1.0, 0.0]])
V_THETA = torch.tensor([[-2.0, 1.0, 3.0], [1.0, -3.0, 2.0]])


def test_nft_implicit_policies_by_hand():
    v_pos, v_neg = nft_policies(V_THETA, V_OLD, beta=0.5)
    # v+ = 0.5 v_old + 0.5 v;  v- = 1.5 v_old - 0.5 v
    torch.testing.assert_close(v_pos, torch.tensor([[-1.0, 1.0, 2.0], [1.0, -2.0, 1.0]]))
    torch.testing.assert_close(v_neg, torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, -1.0]]))


def test_nft_loss_by_hand():
    r = torch.tensor([1.0, 0.25])
    out = nft_loss(V_THETA, V_OLD, X0, NOISE, r, beta=0.5)
    # v+ - target = [[0, 0, 0], [0, 0, 1]] -> 0 and 1/3;  v- - target = [[2, 0, -2], [0, 2, -1]] -> 8/3 and 5/3
    torch.testing.assert_close(out.positive, torch.tensor([0.0, 1 / 3]))
    torch.testing.assert_close(out.negative, torch.tensor([8 / 3, 5 / 3]))
    # sample 0: 1 * 0 + 0 * 8/3 = 0;  sample 1: 0.25 * 1/3 + 0.75 * 5/3 = 4/3;  mean 2/3
    assert out.loss.item() == pytest.approx(2 / 3, rel=1e-6)
    assert nft_loss(V_THETA, V_OLD, X0, NOISE, r, beta=0.5, scale=10.0).loss.item() == pytest.approx(20 / 3, rel=1e-6)
    # (v - v_old)^2 = [[4, 0, 4], [0, 4, 4]]: mean 8/3
    assert out.old_deviation.item() == pytest.approx(8 / 3, rel=1e-6)


def test_nft_adaptive_weighting_by_hand():
    out = nft_loss(V_THETA, V_OLD, X0, NOISE, torch.tensor([1.0, 0.25]), beta=0.5, sigma=torch.tensor([0.5, 1.0]))
    # x0-space errors e = sigma (v - target), each branch mean(e^2) / mean|e|:
    # positive: sample 0 e = 0 -> 0 (weight floored at 1e-5); sample 1 e = [0, 0, 1] -> (1/3) / (1/3) = 1
    # negative: sample 0 e = [1, 0, -1] -> (2/3) / (2/3) = 1;  sample 1 e = [0, 2, -1] -> (5/3) / 1 = 5/3
    torch.testing.assert_close(out.positive, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(out.negative, torch.tensor([1.0, 5 / 3]))
    # mean(1 * 0 + 0 * 1, 0.25 * 1 + 0.75 * 5/3) = mean(0, 1.5) = 0.75
    assert out.loss.item() == pytest.approx(0.75, rel=1e-6)


def test_nft_optimality_by_hand():
    advantages = torch.tensor([-7.0, -2.5, 0.0, 1.0, 5.0, 10.0])
    # clip to [-5, 5], / 5, / 2, + 1/2
    torch.testing.assert_close(nft_optimality(advantages), torch.tensor([0.0, 0.25, 0.5, 0.6, 1.0, 1.0]))
    torch.testing.assert_close(nft_optimality(torch.tensor([-1.0, 0.5]), adv_clip=1.0), torch.tensor([0.0, 0.75]))


@pytest.mark.parametrize("beta", [0.1, 1.0])
@pytest.mark.parametrize("r, direction", [(1.0, 1), (0.0, -1), (0.5, 0)])
def test_nft_gradient_at_the_old_policy_points_toward_the_target_for_good_samples(beta, r, direction):
    x0, noise = torch.randn(1, 6), torch.randn(1, 6)
    v_old = torch.randn(1, 6)
    v = v_old.clone().requires_grad_()
    nft_loss(v, v_old, x0, noise, torch.tensor([r]), beta).loss.backward()
    to_target = flow_target(x0, noise) - v_old
    # d/dv = 2 beta (2r - 1) (v_old - target) / (elements): descent moves toward the target iff r > 1/2
    torch.testing.assert_close(v.grad, -2 * beta * (2 * r - 1) * to_target / 6)
    along = (-v.grad * to_target).sum().item()  # the descent direction's component toward the target
    assert along == pytest.approx(0.0, abs=1e-6) if direction == 0 else along * direction > 0


def test_nft_minimiser_is_old_policy_plus_scaled_step_to_the_target():
    x0, noise, v_old = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    r, beta = torch.tensor([0.9, 0.5, 0.2]), 0.3
    v_star = v_old + ((2 * r - 1) / beta)[:, None] * (flow_target(x0, noise) - v_old)
    v = v_star.clone().requires_grad_()
    nft_loss(v, v_old, x0, noise, r, beta).loss.backward()
    torch.testing.assert_close(v.grad, torch.zeros_like(v), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------------ shared parts
def test_velocity_kl_and_old_policy_decay_by_hand():
    kl = velocity_kl(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 2.0]]))
    torch.testing.assert_close(kl, torch.tensor([2.5, 2.0]))  # (1 + 4) / 2 and 4 / 2
    # DiffusionNFT's default schedule and its OCR one
    assert [old_policy_decay(s, 0.001, 0.5) for s in (0, 100, 1000)] == pytest.approx([0.0, 0.1, 0.5])
    assert [old_policy_decay(s, 0.0075, 0.999, 75) for s in (0, 75, 175, 1000)] == pytest.approx([0, 0, 0.75, 0.999])


@pytest.mark.parametrize("distribution", ["uniform", "logit_normal"])
def test_continuous_sigmas_are_reproducible_stratified_and_shifted(distribution):
    draw = sample_training_sigmas(256, torch.Generator().manual_seed(0), distribution, num=4, shift=1.0)
    again = sample_training_sigmas(256, torch.Generator().manual_seed(0), distribution, num=4, shift=1.0)
    assert draw.shape == (4, 256) and draw.dtype == torch.float32 and torch.equal(draw, again)
    assert draw.min() >= 0.01 and draw.max() <= 1.0
    if distribution == "uniform":  # each sample gets one sigma in each quarter of [0, 1]
        quarters = torch.sort((draw * 4).floor().clamp(max=3), dim=0).values
        assert torch.equal(quarters, torch.arange(4.0)[:, None].expand(4, 256))
    else:  # sigmoid of a standard normal is symmetric about 1/2
        assert draw.median().item() == pytest.approx(0.5, abs=0.05)
    shifted = sample_training_sigmas(256, torch.Generator().manual_seed(0), distribution, num=4, shift=3.0)
    assert (shifted >= draw).all() and shifted.mean() > draw.mean() + 0.1


def test_schedule_sigmas_are_distinct_levels_of_the_rollout_schedule():
    schedule = flow_sigmas(10, 3.0)
    draw = sample_training_sigmas(16, torch.Generator().manual_seed(0), "schedule", num=9, schedule=schedule)
    assert draw.shape == (9, 16)
    for column in draw.T:
        assert len(column.unique()) == 9 and torch.isin(column, schedule[:-1]).all()
    with pytest.raises(ValueError, match=r"raise sampling.train_steps"):
        sample_training_sigmas(2, torch.Generator(), "schedule", num=11, schedule=schedule)
    with pytest.raises(ValueError, match="needs the rollout's schedule"):
        sample_training_sigmas(2, torch.Generator(), "schedule")


def test_shared_sigmas_are_one_per_row():
    draw = sample_training_sigmas(5, torch.Generator().manual_seed(0), "logit_normal", num=3, shared=True)
    assert draw.shape == (3, 5) and torch.equal(draw, draw[:, :1].expand(3, 5))


# ------------------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"algorithm": "ppo"}, "forward_rl.algorithm must be one of"),
        ({"beta": 0.0}, "forward_rl.beta must be > 0"),
        ({"beta": -1.0}, "forward_rl.beta must be > 0"),
        ({"sigma_distribution": "cosine"}, "forward_rl.sigma_distribution must be one of"),
        ({"timesteps_per_sample": 0}, "timesteps_per_sample must be >= 1"),
        ({"awm_power": 0.0}, "awm_power must be in"),
        ({"old_decay_max": 1.0}, "old_decay_max must be in"),
        ({"kl_beta": -0.1}, "kl_beta"),
    ],
)
def test_config_refuses_nonsense_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        ForwardRLConfig(**kwargs)
    assert "\n" not in str(error.value)


def test_config_checks_the_rollout():
    for rollout in ("sde", "unipc"):  # transitions recorded for nothing: NFT samples deterministically, unrecorded
        with pytest.raises(ValueError, match=rf"rollout '{rollout}'.*use sampling.rollout: ode"):
            ForwardRLConfig(algorithm="nft").check_rollout(rollout)
    for algorithm in ("awm", "nft"):
        with pytest.raises(ValueError, match=r"record Rollout.final"):
            ForwardRLConfig(algorithm=algorithm).check_rollout("unipc", clean_samples=False)
    with pytest.raises(ValueError, match=r"sampling.rollout must be one of"):
        ForwardRLConfig().check_rollout("ddim")
    ForwardRLConfig(algorithm="nft").check_rollout("ode")
    ForwardRLConfig(algorithm="awm").check_rollout("unipc")
    ForwardRLConfig(algorithm="awm").check_rollout("sde")  # AWM's released runs sample with SDE noise
    config = ForwardRLConfig(beta=0.1)
    assert config.nft_scale == pytest.approx(50.0) and config.decay(100) == pytest.approx(0.1)


# ------------------------------------------------------------------------------------------------- learning (toy)
MODES, MODE_STD = torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.5


def base_velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The exact velocity ``E[eps - x0 | x_sigma]`` of an equal mixture of N(+-2 e1, 0.5^2 I): a "pretrained" base
    whose samples fall half in each mode."""
    s = sigma.view(-1, 1)
    c = (1 - s) ** 2 * MODE_STD**2 + s**2  # variance of x_sigma given the mode
    centred = x[:, None, :] - (1 - s)[:, None] * MODES[None]  # (B, mode, 2)
    responsibility = torch.softmax(-(centred**2).sum(-1) / (2 * c), dim=1)[..., None]
    x0_given_mode = MODES[None] + ((1 - s) * MODE_STD**2 / c)[:, None] * centred
    eps_given_mode = (s / c)[:, None] * centred
    return (responsibility * (eps_given_mode - x0_given_mode)).sum(1)


class ToyPolicy(torch.nn.Module):
    """The base velocity plus a small residual that starts at zero, as a LoRA on a pretrained model does."""

    def __init__(self) -> None:
        super().__init__()
        self.residual = torch.nn.Sequential(
            torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2)
        )
        torch.nn.init.zeros_(self.residual[-1].weight)
        torch.nn.init.zeros_(self.residual[-1].bias)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return base_velocity(x, sigma) + self.residual(torch.cat([x, sigma.view(-1, 1)], dim=1))


@torch.no_grad()
def euler_sample(policy: torch.nn.Module, noise: torch.Tensor, steps: int = 10) -> torch.Tensor:
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    x = noise
    for i in range(steps):
        x = x - (sigmas[i] - sigmas[i + 1]) * policy(x, sigmas[i].expand(len(x)))
    return x


def train_toy(config: ForwardRLConfig, reward, steps: int = 200, group: int = 32, seed: int = 0) -> ToyPolicy:
    """Rollout -> reward -> group advantages -> one forward-process update, ``steps`` times, as module.py would."""
    torch.manual_seed(seed)
    policy, old = ToyPolicy(), ToyPolicy()
    old.load_state_dict(policy.state_dict())
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    nft = config.algorithm == "nft"
    for step in range(steps):
        x0 = euler_sample(old if nft else policy, torch.randn(group, 2, generator=generator))  # NFT samples with v_old
        advantages = group_advantages(reward(x0), torch.zeros(group, dtype=torch.long), clip=config.adv_clip).values
        sigmas = sample_training_sigmas(
            group, generator, config.sigma_distribution, config.timesteps_per_sample, config.sigma_shift
        )
        optimizer.zero_grad()
        for sigma in sigmas:
            noise = torch.randn(group, 2, generator=generator)
            x_t = noised(x0, noise, sigma)
            v = policy(x_t, sigma)
            if nft:
                with torch.no_grad():
                    v_old = old(x_t, sigma)
                adaptive = sigma if config.adaptive_weighting else None
                r = nft_optimality(advantages, config.adv_clip)
                loss = nft_loss(v, v_old, x0, noise, r, config.beta, adaptive, config.nft_scale).loss
            else:
                weights = sigma if config.awm_sigma_weight else None
                scaled = advantages / config.adv_clip
                loss = awm_loss(v, x0, noise, scaled, weights, config.awm_power).loss
            loss = loss + config.kl_beta * velocity_kl(v, base_velocity(x_t, sigma)).mean()
            (loss / len(sigmas)).backward()
        optimizer.step()
        decay = config.decay(step)
        with torch.no_grad():
            for p_old, p_new in zip(old.parameters(), policy.parameters(), strict=True):
                p_old.mul_(decay).add_(p_new, alpha=1 - decay)
    return policy


@pytest.fixture
def one_thread():
    """Tiny tensors: thread hand-offs cost more than the arithmetic (0.5 s instead of 3-8 s a run here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("algorithm", ["awm", "nft"])
@pytest.mark.parametrize("favoured", [1.0, -1.0])
def test_both_methods_raise_the_reward_of_a_two_mode_flow(algorithm, favoured, one_thread):
    def reward(x: torch.Tensor) -> torch.Tensor:  # 1 in the favoured mode (right or left), 0 in the other
        return (favoured * x[:, 0] > 0).float()

    config = ForwardRLConfig(
        algorithm=algorithm, timesteps_per_sample=1, sigma_distribution="logit_normal", sigma_shift=1.0
    )
    evaluation_noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(123))
    base_reward = reward(euler_sample(ToyPolicy(), evaluation_noise)).mean().item()
    learned_reward = reward(euler_sample(train_toy(config, reward), evaluation_noise)).mean().item()
    assert 0.4 < base_reward < 0.6  # the base really has two modes
    assert learned_reward > base_reward + 0.3
