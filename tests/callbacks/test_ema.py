"""LoRA EMA: closed-form average, swapping, and a state round trip through a Lightning-style checkpoint."""

import io
from types import SimpleNamespace

import pytest
import torch

from tests.helpers import latents
from world_r1.callbacks import LoRAEMA
from world_r1.policy import LoRAConfig, WanPolicy


@pytest.fixture()
def module(tiny_wan_dir):
    policy = WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(rank=2, alpha=4.0))
    return SimpleNamespace(policy=policy, steps_done=0)


def _set(module, value: float) -> None:
    with torch.no_grad():
        for i, p in enumerate(module.policy.lora_parameters()):
            p.fill_(value + i)


def _train(ema: LoRAEMA, module, values: list[float]) -> None:
    for value in values:
        _set(module, value)
        module.steps_done += 1
        ema.on_train_batch_end(None, module)


def test_ema_equals_closed_form_with_flow_grpos_warm_up(module):
    decay, values = 0.8, [1.0, 3.0, -2.0, 5.0, 4.0, 6.0]
    _set(module, 0.5)
    ema = LoRAEMA(decay=decay)
    ema.on_fit_start(None, module)
    _train(ema, module, values)
    expected = 0.5
    for n, value in enumerate(values):
        d = min(decay, (1 + n) / (10 + n))  # 0.1, 0.18, 0.25, 0.31, ... then 0.8
        expected = d * expected + (1 - d) * value
    averaged = ema.averaged_lora_state_dict(module)
    for i, tensor in enumerate(averaged.values()):
        torch.testing.assert_close(tensor, torch.full_like(tensor, expected + i))
    assert ema.num_updates == len(values)


def test_update_every_skips_steps(module):
    _set(module, 0.0)
    ema = LoRAEMA(decay=0.5, update_every=2)
    ema.on_fit_start(None, module)
    _train(ema, module, [10.0, 20.0, 30.0, 40.0])  # updates after steps 2 and 4 only (decays 0.1, then 2/11)
    first = next(iter(ema.averaged_lora_state_dict(module).values()))
    expected = (2 / 11) * (0.1 * 0.0 + 0.9 * 20.0) + (9 / 11) * 40.0
    torch.testing.assert_close(first, torch.full_like(first, expected))


def test_an_export_after_one_update_is_not_the_identity_adapter(module):
    """LoRA B starts at zero; without the warm-up one update at decay 0.9 would keep 90 % of that zero."""
    ema = LoRAEMA(decay=0.9)
    ema.on_fit_start(None, module)  # the average starts as the initial adapter: every B is zero
    lora_b = [p for name, p in module.policy.transformer.named_parameters() if "lora_B" in name]
    assert lora_b and all(float(b.abs().sum()) == 0 for b in lora_b)
    _train(ema, module, [1.0])
    averaged = ema.averaged_lora_state_dict(module)
    trained_b = [t for name, t in averaged.items() if "lora_B" in name]
    assert trained_b and all(torch.allclose(t, torch.full_like(t, float(t.flatten()[0]))) for t in trained_b)
    assert all(float(t.abs().min()) > 0.8 for t in trained_b)  # 0.9 of the trained weights (>= 1.0)


def test_swapped_uses_average_and_restores_raw(module):
    _set(module, 1.0)
    ema = LoRAEMA(decay=0.0)  # average == latest weights at update time
    ema.on_fit_start(None, module)
    _train(ema, module, [4.0])
    _set(module, 9.0)
    x, embeds = latents(1), module.policy.encode_prompts(["a"])
    raw_out = module.policy.velocity(x, 0.5, embeds).detach()
    with ema.swapped(module):
        assert module.policy.lora_parameters()[0].flatten()[0] == 4.0
        swapped_out = module.policy.velocity(x, 0.5, embeds).detach()
    assert module.policy.lora_parameters()[0].flatten()[0] == 9.0
    assert not torch.allclose(raw_out, swapped_out)
    torch.testing.assert_close(module.policy.velocity(x, 0.5, embeds).detach(), raw_out)


def test_state_round_trip_preserves_average(module, tiny_wan_dir):
    _set(module, 2.0)
    ema = LoRAEMA(decay=0.7)
    ema.on_fit_start(None, module)
    _train(ema, module, [3.0, 7.0])
    buffer = io.BytesIO()
    torch.save(ema.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    fresh_module = SimpleNamespace(
        policy=WanPolicy.from_pretrained(tiny_wan_dir, dtype="fp32", lora=LoRAConfig(rank=2, alpha=4.0)), steps_done=2
    )
    restored = LoRAEMA(decay=0.7)
    restored.load_state_dict(saved)
    restored.on_fit_start(None, fresh_module)  # model weights differ: the average must come from the checkpoint
    assert restored.num_updates == 2
    for a, b in zip(
        ema.averaged_lora_state_dict(module).values(),
        restored.averaged_lora_state_dict(fresh_module).values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay"):
        LoRAEMA(decay=1.5)
    with pytest.raises(ValueError, match="update_every"):
        LoRAEMA(update_every=0)
