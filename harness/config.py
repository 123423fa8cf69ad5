"""Run configuration: one frozen dataclass that every stage reads."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.tasks import TaskSettings

ALL_VARIANTS = ("fp16", "gguf-f16", "gguf-q4_k_m", "awq-int4")
AWQ_BACKENDS = ("autoawq", "llmcompressor")


def default_threads() -> int:
    """Physical cores where known, else logical CPUs (llama-bench's default is physical cores)."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except Exception:  # psutil missing or unable to tell
        pass
    return os.cpu_count() or 1


@dataclass(frozen=True)
class EvalSettings:
    """What every cell measures and how; part of each cell's cache key."""

    n_ctx: int = 512
    # Score tokens from this fraction of the window on (llama-perplexity scores the second half).
    score_from: float = 0.5
    max_windows: int | None = 48
    kld_top_k: int = 256
    prefill_tokens: int = 512
    decode_tokens: int = 128
    speed_repeats: int = 3
    threads: int = field(default_factory=default_threads)
    seed: int = 0
    # runtimes without full logits (vLLM): top-k log-probs per position, for KLD and top-1
    sparse_top_k: int = 20
    # serving runtimes (vLLM): batch sizes, prompt and output tokens of the throughput sweep
    serving_batches: tuple[int, ...] = (1, 8, 32)
    serving_input_tokens: int = 128
    serving_output_tokens: int = 128
    vllm_dtype: str = "auto"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AwqRecipe:
    """The seed's AutoAWQ recipe; group size falls back when layers' widths need it."""

    w_bit: int = 4
    q_group_size: int = 128
    zero_point: bool = True
    version: str = "GEMM"
    backend: str = "autoawq"
    calib_samples: int = 64
    calib_seq_len: int = 256

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunConfig:
    model: str | None
    out: Path
    variants: tuple[str, ...] = ALL_VARIANTS
    runtimes: tuple[str, ...] = ("transformers", "llama.cpp")
    eval: EvalSettings = field(default_factory=EvalSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    awq: AwqRecipe = field(default_factory=AwqRecipe)
    calibration: Path | None = None
    eval_text: Path | None = None
    force: bool = False
