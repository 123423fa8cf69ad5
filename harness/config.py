"""Run configuration: one frozen dataclass that every stage reads."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evaluators.tasks import TaskSettings

DEFAULT_VARIANTS = ("fp16", "gguf-f16", "gguf-q4_k_m", "awq-int4")
AWQ_BACKENDS = ("autoawq", "llmcompressor")
# llama.cpp quantization types offered as `gguf-<type>` (and `gguf-<type>-imatrix`), largest first;
# the i-quants exist only with an importance matrix. Names as llama-quantize spells them, lower-cased.
GGUF_TYPES = ("q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_1", "q5_0", "q4_k_m", "q4_k_s", "q4_1", "q4_0",
              "iq4_xs", "iq4_nl", "q3_k_l", "q3_k_m", "q3_k_s", "iq3_m", "iq3_xxs", "q2_k", "q2_k_s", "iq2_m",
              "iq2_xs", "iq2_xxs")
IMATRIX_ONLY = tuple(t for t in GGUF_TYPES if t.startswith("iq") or t == "q2_k_s")


def parse_gguf_variant(name: str) -> tuple[str, bool] | None:
    """`gguf-q4_k_m` -> ("q4_k_m", False); `gguf-q2_k-imatrix` -> ("q2_k", True); None if not a GGUF quant."""
    if not name.startswith("gguf-") or name == "gguf-f16":
        return None
    body = name[5:]
    imatrix = body.endswith("-imatrix")
    body = body[: -len("-imatrix")] if imatrix else body
    if body not in GGUF_TYPES or (body in IMATRIX_ONLY and not imatrix):
        return None
    return body, imatrix


def is_variant(name: str) -> bool:
    return name in DEFAULT_VARIANTS or parse_gguf_variant(name) is not None


def variant_order(name: str) -> tuple[int, int, str]:
    """Sort key for tables and plots: fp16, gguf-f16, GGUF types from large to small, AWQ, others."""
    if name == "fp16":
        return (0, 0, name)
    if name == "gguf-f16":
        return (1, 0, name)
    g = parse_gguf_variant(name)
    if g is not None:
        return (2, GGUF_TYPES.index(g[0]), name)
    return (3 if name.startswith("awq") else 4, 0, name)


def variants_help() -> str:
    return ("fp16, gguf-f16, awq-int4, and gguf-<type> or gguf-<type>-imatrix for a llama.cpp type "
            f"({', '.join(GGUF_TYPES)}; i-quants and q2_k_s only with -imatrix)")


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
    # which of the text's windows: "spread" (a seeded random sample, in text order) or "first" (as
    # llama-perplexity --chunks); the seed makes the choice reproducible (evaluators/windows.py)
    window_choice: str = "spread"
    window_seed: int = 0
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
    # llama.cpp flash attention: off by default (its CPU path rounds Q to f16: on the default model
    # that moves Q4_K_M's PPL by +0.7%); llama-perplexity and llama-bench default to auto (= on for CPU)
    llama_flash_attn: str = "off"
    # where runtimes run: cpu, or cuda (transformers in float16, llama.cpp offloads every layer)
    device: str = "cpu"
    # decode speed at these batch sizes (batch 1 always; more on GPU runs)
    decode_batches: tuple[int, ...] = (1,)
    # > 0: every cell also returns its logits for this many tokens, and each quantized runtime is
    # checked against the dequantized reference of the same weights (evaluators/kernel_check.py)
    kernel_check_tokens: int = 0
    # GPU runs: the pool of GPUs (0: every visible one); each cell takes the fewest that hold it
    # (harness/gpu_plan.py), and llama.cpp splits a model over several by layer or by row
    gpus: int = 0
    llama_split_mode: str = "layer"

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
    device: str = "cpu"  # where the tool calibrates: cpu (float32) or cuda (float16, the tool's GPU path)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunConfig:
    model: str | None
    out: Path
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    runtimes: tuple[str, ...] = ("transformers", "llama.cpp")
    eval: EvalSettings = field(default_factory=EvalSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    awq: AwqRecipe = field(default_factory=AwqRecipe)
    calibration: Path | None = None
    eval_text: Path | None = None
    force: bool = False
    synthetic: str | None = None  # performance-only: a model of this shape with random weights (harness/synthetic.py)
    tokenizer_dir: Path | None = None  # tokenizer for the synthetic model (default: the embedded SmolLM2 one)
    notes: tuple[str, ...] = ()  # statements the run's report must carry (e.g. a runtime that could not be run)
    build_only: bool = False  # build the variants and stop
    trust_remote_code: bool = False  # accept a source with auto_map (its code is still not run)
    allow_pickle: bool = False  # read pickle .bin weights with torch's weights-only loader
