"""The runtime interface every backend implements: token ids in, logits or tokens out."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Generation:
    tokens: list[int]
    prefill_s: float  # time to process the prompt and produce the first next-token logits
    decode_s: float  # time of the single-token forward passes that follow
    n_decode: int


class Runtime(ABC):
    """One inference engine. A runtime reads an artifact format; it never knows who wrote it."""

    name: str
    notes: list[str]

    @abstractmethod
    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        """Load the model for scoring windows of n_ctx tokens."""

    @abstractmethod
    def logits(self, ids: np.ndarray) -> np.ndarray:
        """float32 logits [len(ids), vocab] for every position of one sequence (fresh context)."""

    @abstractmethod
    def generate(self, prompt: list[int], n_new: int) -> Generation:
        """Greedy: prefill `prompt`, then n_new single-token steps; timed separately."""

    def tokenize(self, text: str) -> list[int] | None:
        """The runtime's own tokenizer, if it has one (to check it against the source's)."""
        return None

    def versions(self) -> dict[str, str]:
        return {}

    def compute_dtype(self) -> str:
        return "unknown"

    def close(self) -> None:
        pass
