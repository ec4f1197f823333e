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


def test_ema_equals_closed_form(module):
    decay, values = 0.8, [1.0, 3.0, -2.0, 5.0]
    _set(module, 0.5)
    ema = LoRAEMA(decay=decay)
    ema.on_fit_start(None, module)
    _train(ema, module, values)
    expected = 0.5
    for value in values:
        expected = decay * expected + (1 - decay) * value
    averaged = ema.averaged_lora_state_dict(module)
    for i, tensor in enumerate(averaged.values()):
        torch.testing.assert_close(tensor, torch.full_like(tensor, expected + i))
    assert ema.num_updates == len(values)


def test_update_every_skips_steps(module):
    _set(module, 0.0)
    ema = LoRAEMA(decay=0.5, update_every=2)
    ema.on_fit_start(None, module)
    _train(ema, module, [10.0, 20.0, 30.0, 40.0])  # updates after steps 2 and 4 only
    first = next(iter(ema.averaged_lora_state_dict(module).values()))
    torch.testing.assert_close(first, torch.full_like(first, 0.5 * (0.5 * 0.0 + 0.5 * 20.0) + 0.5 * 40.0))


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
