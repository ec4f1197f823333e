"""A 2-process DDP (gloo, CPU) Flow-GRPO run on the tiny Wan; each rank dumps what the test compares.

Run as ``python ddp_worker.py MODEL_DIR OUT_DIR STRATEGY [STEP [DEVICES]]``: Lightning's launcher re-runs this script
for rank 1. STEP is ``sde`` (Flow-GRPO-Fast, the default) or ``release`` (World-R1's UniPC step with its camera
injection); DEVICES 2 by default (1 runs the same samples in one process). Per rank it writes ``rank<r>.pt``: every
step's local rewards, group ids and advantages, and the final LoRA weights.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from diffusers.models.transformers.transformer_wan import WanTransformerBlock
from lightning.pytorch.strategies import FSDPStrategy

from tests.helpers import bare_trainer
from world_r1.camera import CameraConfig
from world_r1.data import PromptDataModule
from world_r1.grpo import GRPOConfig, SamplingConfig
from world_r1.module import WorldR1
from world_r1.policy import LoRAConfig, PolicyConfig, VideoSpec
from world_r1.rewards import ColorReward, WeightedReward


class Record(L.Callback):
    """Keeps each step's local rewards, group ids and advantages."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        last = outputs
        self.steps.append(
            {
                "rewards": last["rewards"]["total"].cpu(),
                "group_ids": batch["group_ids"].cpu(),
                "sample_ids": batch["sample_ids"].cpu(),
                "advantages": last["advantages"].cpu(),
            }
        )


class CPUFSDPStrategy(FSDPStrategy):
    """Lightning's FSDP strategy, unchanged; as a subclass it passes the Trainer's GPU-only check, so the very code path
    of configs/overlays/wan21_14b.yaml (torch FSDP, gloo on CPU) runs in tests."""


def _strategy(name: str) -> str | FSDPStrategy:
    """ "ddp", or FSDP set up as configs/overlays/wan21_14b.yaml does it."""
    if name != "fsdp":
        return name
    return CPUFSDPStrategy(
        sharding_strategy="FULL_SHARD",
        auto_wrap_policy={WanTransformerBlock},
        activation_checkpointing_policy={WanTransformerBlock},
        state_dict_type="full",
    )


def _module(model_dir: str, step: str) -> WorldR1:
    policy = PolicyConfig(model=model_dir, dtype="fp32", lora=LoRAConfig(4, 8.0), max_sequence_length=32)
    if step == "release":
        torch.manual_seed(0)  # the LoRA's initialisation draws from the global generator: the same in every run
        return WorldR1(
            policy=policy,
            video=VideoSpec(32, 32, 9),
            sampling=SamplingConfig(train_steps=4, eval_steps=4, rollout="unipc", timestep_fraction=0.5),
            grpo=GRPOConfig(lr=1e-2, clip_range=1e-3, micro_batch_size=1),
            reward=WeightedReward({"red": ColorReward()}),
            camera=CameraConfig(enabled=True),
        )
    return WorldR1(
        policy=policy,
        video=VideoSpec(32, 32, 5),
        sampling=SamplingConfig(train_steps=4, eval_steps=4, noise_level=1.0, sde_window=2, sde_window_max_start=2),
        grpo=GRPOConfig(lr=1e-2, clip_range=0.2, micro_batch_size=2),
        reward=WeightedReward({"red": ColorReward()}),
    )


def main(model_dir: str, out_dir: str, strategy: str, step: str = "sde", devices: str = "2") -> None:
    module = _module(model_dir, step)
    prompts = Path(out_dir) / "prompts.txt"
    prompts.write_text("Camera fixed. A red room.\nCamera pan left. A green forest.\n")
    # sde: G = 4 samples of one prompt per step, 2 on each process: every group spans both processes;
    # release: 2 samples per prompt (as the release), 2 prompts per step
    groups = {"group_size": 4, "prompts_per_step": 1} if step == "sde" else {"group_size": 2, "prompts_per_step": 2}
    data = PromptDataModule(train_prompts=str(prompts), decoupled_prompts=None, **groups)
    record = Record()
    trainer = bare_trainer(3, devices=int(devices), strategy=_strategy(strategy), callbacks=[record])
    trainer.fit(module, data)
    lora = {k: v.clone() for k, v in module.policy.lora_state_dict().items()}
    torch.save({"steps": record.steps, "lora": lora}, Path(out_dir) / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:6])
