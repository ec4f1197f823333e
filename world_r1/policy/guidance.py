"""What a denoising step needs besides the state and the noise level, as one bundle that travels together."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from world_r1.policy.conditioning import ImageCondition


@dataclass(frozen=True)
class Guidance:
    """The conditioning of a batch of B samples and how classifier-free guidance mixes it.

    prompt_embeds: (B, L, D) the prompts' text embeddings; negative_embeds: (B, L, D) the negative prompt's (None:
    no CFG); scale: the CFG scale; scale_2: the low-noise expert's scale of a two-expert Wan (None: ``scale``);
    condition: an image-to-video model's image conditioning (None: text only).
    """

    prompt_embeds: torch.Tensor
    negative_embeds: torch.Tensor | None = None
    scale: float = 5.0
    scale_2: float | None = None
    condition: ImageCondition | None = None

    def select(self, index: torch.Tensor | slice) -> Guidance:
        """The guidance of the samples ``index`` (a micro-batch of the policy update)."""
        return replace(
            self,
            prompt_embeds=self.prompt_embeds[index],
            negative_embeds=None if self.negative_embeds is None else self.negative_embeds[index],
            condition=None if self.condition is None else self.condition.select(index),
        )

    @property
    def image(self) -> ImageCondition:
        """The image conditioning, empty for a text-only batch (so callers need no None check)."""
        return self.condition or ImageCondition()

    def velocity(self, policy, latents: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """``policy``'s CFG velocity (float32, shape of ``latents``) at ``sigma`` under this guidance."""
        return policy.velocity(
            latents, sigma, self.prompt_embeds, self.negative_embeds, self.scale, self.condition, self.scale_2
        )
