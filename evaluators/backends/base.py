"""The runtime interface every backend implements: token ids in, logits or tokens out."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluators.kld import RowLogprobs, SparseLogprobs, TopK


class Unsupported(Exception):
    """The runtime cannot read this artifact here (no kernel, no loader): a cell that says why, not a failure."""


@dataclass
class Generation:
    tokens: list[int]
    prefill_s: float  # time to process the prompt and produce the first next-token logits
    decode_s: float  # time of the single-token forward passes that follow
    n_decode: int


@dataclass(frozen=True)
class ServingPlan:
    """A serving runtime's throughput sweep: batch sizes, prompt and output tokens per request."""

    batches: tuple[int, ...]
    input_tokens: int
    output_tokens: int


class Runtime(ABC):
    """One inference engine. A runtime reads an artifact format; it never knows who wrote it.

    Runtimes with `full_logits` implement `logits`; others (vLLM) implement `prompt_logprobs`,
    which returns the log-probability of each actual token and the runtime's own top-k.
    A runtime registers itself (core.registry.register_runtime) and is built from its cell's spec by
    `from_spec`; the optional features below answer None where a runtime has none."""

    name: str
    notes: list[str]
    full_logits: bool = True
    sparse_k: int = 20  # runtimes without full logits: top-k log-probs asked per position (KLD, top-1)
    serving: ServingPlan | None = None  # serving runtimes: the throughput sweep to run
    # computes every format with its weights dequantized to float16 (the kernel checks' reference)
    computes_dequantized: bool = False

    @classmethod
    def from_spec(cls, spec, options) -> "Runtime":
        """The runtime a cell's spec (core.cellspec.CellSpec) asks for, with its options dataclass (or None)."""
        return cls()

    @classmethod
    def placement(cls, fmt: str) -> str:
        """On a GPU pool: "pool" (every GPU given), "fewest" (the fewest that hold it) or "single"."""
        return "pool"

    @classmethod
    def gpu_layout(cls, n_gpus: int, fmt: str, shape, options) -> str:
        """How a cell of this runtime is split over n_gpus > 1 (a label results.json keeps)."""
        return "layers"

    @abstractmethod
    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        """Load the model for scoring windows of n_ctx tokens."""

    def reopen(self, n_ctx: int) -> bool:
        """Serve windows of n_ctx tokens from the model already loaded (a pair's next measure); False: load anew."""
        return False

    def logits(self, ids: np.ndarray, keep_from: int = 0) -> np.ndarray:
        """float32 logits [len(ids) - keep_from, vocab] of positions keep_from .. len(ids)-1 of one
        sequence (fresh context). Runtimes compute no logits before keep_from (as llama-perplexity
        asks for none there); the array may be a view that the next call overwrites."""
        raise NotImplementedError(f"{self.name} does not return full logits")

    def row_logprobs(self, ids: np.ndarray, keep_from: int = 0, top_k: int = 0) -> RowLogprobs:
        """`logits` as RowLogprobs; runtimes that hold the logits on a GPU override it to reduce the rows there
        (and add their top-k where top_k > 0). llama.cpp's logits come back to the host: no torch beside its own
        CUDA libraries in one process."""
        return RowLogprobs.from_logits(self.logits(ids, keep_from))

    def prompt_logprobs(self, seqs: list[list[int]], k: int, last: int | list[int] | None = None) -> list[SparseLogprobs]:
        """For each sequence: entry i gives log p(ids[i+1] | ids[:i+1]) and the top-k at i, for
        every position, or for its `last` positions only (what log-likelihood requests need; one
        count for all sequences or one per sequence)."""
        out = []
        lasts = last if isinstance(last, list) else [last] * len(seqs)
        for ids, last in zip(seqs, lasts):
            keep = 0 if last is None else max(0, len(ids) - 1 - last)
            # the last token is only a target: n-1 input tokens (as lm-eval's HF model feeds them)
            rows = RowLogprobs.from_logits(self.logits(np.asarray(ids[:-1]), keep_from=keep))
            top = TopK.from_rows(rows, k)
            tgt = np.asarray(ids[keep + 1:], dtype=np.int64)
            out.append(SparseLogprobs(rows.at(tgt), top.ids.astype(np.int64), top.logp.astype(np.float64)))
        return out

    def throughput(self, prompts: list[list[int]], n_new: int) -> dict:
        """Serve a batch of prompts at once; per-request token times. Only serving runtimes."""
        raise NotImplementedError(f"{self.name} has no batched serving path")

    @abstractmethod
    def generate(self, prompt: list[int], n_new: int) -> Generation:
        """Greedy: prefill `prompt`, then n_new single-token steps; timed separately."""

    def generate_many(self, prompts: list[list[int]], n_new: int) -> list[list[int]]:
        """Greedy continuations of exactly n_new tokens for prompts of any lengths, not stopping at an end of
        sequence (the harness cuts there). Runtimes that batch them override this; the tokens must be the
        ones `generate` would give."""
        return [list(self.generate(p, n_new - 1).tokens[:n_new]) for p in prompts]

    def tokenize(self, text: str) -> list[int] | None:
        """The runtime's own tokenizer, if it has one (to check it against the source's)."""
        return None

    def weight_bytes(self) -> int | None:
        """Bytes of weights this runtime reads per decoded token at batch 1 (for the roofline)."""
        return None

    def versions(self) -> dict[str, str]:
        return {}

    def compute_dtype(self) -> str:
        return "unknown"

    def check_decode(self, prompt: list[int], n_tokens: int) -> dict | None:
        """A compiled decode step against the eager forward on the same tokens (None: no compiled step)."""
        return None

    def compile_seconds(self) -> float | None:
        """Seconds spent compiling (None: nothing compiled)."""
        return None

    def close(self) -> None:
        pass
