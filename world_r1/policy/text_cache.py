"""Prompt embeddings computed once per distinct prompt, so the 11 GB UMT5-XXL encoder can leave the GPU."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


class PromptEmbeddingCache:
    """Maps prompt text to its encoder output, stored trimmed to the real tokens on CPU and padded on use.

    ``encode`` takes a list of prompts and returns ``(embeddings (N, L, D), lengths (N,))`` where only the first
    ``lengths[i]`` rows are real tokens. Wan attends over ``max_length`` positions with zero padding, so padding
    back with zeros reproduces the pipeline exactly while the cache holds ~5x less memory.
    """

    def __init__(self, encode: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]], max_length: int) -> None:
        self._encode = encode
        self.max_length = max_length
        self._store: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, prompt: str) -> bool:
        return prompt in self._store

    def missing(self, prompts: Sequence[str]) -> list[str]:
        """Distinct prompts not cached yet, in first-seen order."""
        return [p for p in dict.fromkeys(prompts) if p not in self._store]

    def warm(self, prompts: Sequence[str], batch_size: int = 8) -> None:
        """Encode every missing prompt (in batches), e.g. the whole prompt file before the text encoder is offloaded."""
        todo = self.missing(prompts)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            embeddings, lengths = self._encode(chunk)
            for prompt, emb, n in zip(chunk, embeddings, lengths.tolist(), strict=True):
                self._store[prompt] = emb[:n].detach().to("cpu", copy=True)

    def get(self, prompts: Sequence[str], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Padded embeddings ``(N, max_length, D)`` for ``prompts``, encoding any that are missing."""
        self.warm(prompts)
        rows = [self._store[p] for p in prompts]
        out = rows[0].new_zeros(len(rows), self.max_length, rows[0].shape[-1])
        for i, row in enumerate(rows):
            out[i, : row.shape[0]] = row
        return out.to(device=device, dtype=dtype)
