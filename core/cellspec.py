"""The contract between the harness and one cell's subprocess: what to load, what to measure, how.

Built in one place (harness/cell_plan.py), written as JSON beside the cell, read back by
evaluators/cell_process.py. Every field says whether it is part of the cell's cache key: paths of inputs
whose content another keyed field already stands for (the artifact's own cache key, the windows' sha256)
are not."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def keyed(default: Any = None, **kw: Any):
    """Changes what the cell measures: part of the cache key."""
    return field(default=default, metadata={"key": True}, **kw)


def unkeyed(default: Any = None, **kw: Any):
    """Where an input lives, or how the run is organised: not part of the cache key."""
    return field(default=default, metadata={"key": False}, **kw)


@dataclass(frozen=True)
class CellSpec:
    variant: str = keyed("")
    runtime: str = keyed("")
    format: str = keyed("")
    kind: str = keyed("quality")  # quality (windows, generation, speed) | tasks (lm-eval requests) | long (long windows)
    # | instruct (greedy answers to instruction-following prompts, in gen_prompts)
    runtime_module: str = unkeyed("")  # the module that registers the runtime (imported by the cell)
    preload: str | None = unkeyed(None)  # a module to import before numpy (core.registry.RuntimeInfo.preload)
    artifact: str = unkeyed("")  # the artifact's cache key (joined to the spec's) stands for it
    options: dict = keyed(None, hash=False)  # the runtime's own options (its options dataclass as a dict)
    # inputs
    windows: str = unkeyed("")  # a long cell: the long probes (evaluators/windows.LongProbes)
    windows_sha256: str = keyed("")
    n_ctx: int = keyed(512)
    threads: int = keyed(1)
    seed: int = keyed(0)
    tokenizer_probe: dict | None = keyed(None, hash=False)
    sanity_prompt_ids: list | None = keyed(None, hash=False)
    sanity_new_tokens: int = keyed(8)
    tokenizer_dir: str | None = unkeyed(None)  # runtimes that need the source's tokenizer (vLLM)
    hf_config_dir: str | None = unkeyed(None)  # transformers reading a GGUF: the source's config states the shape
    # what to measure
    score: bool = keyed(True)  # perplexity and KLD (off for performance-only runs)
    kld_top_k: int = keyed(256)
    reference_dir: str | None = unkeyed(None)  # fp16's top-k per window (read, or written by the reference)
    write_reference: bool = keyed(False)
    speed: bool = keyed(True)
    prefill_tokens: int = keyed(512)
    decode_tokens: int = keyed(128)
    speed_repeats: int = keyed(3)
    speed_protocol: str = keyed("harness")  # or "llama-bench" (quantcompare bench: llama-bench's own protocol)
    decode_batches: list | None = keyed(None, hash=False)  # batch sizes above 1
    profile_decode: bool = keyed(False)  # GPU: kernels per decoded token, by kind
    gen_prompts: list | None = keyed(None, hash=False)  # token ids of each generation prompt (harness/gen_prompts.py)
    gen_tokens: int = keyed(64)
    kernel_check_ids: list | None = keyed(None, hash=False)
    kernel_check_out: str | None = keyed(None)  # the logits file must be in this run's folder: keyed
    task_requests: str | None = unkeyed(None)
    task_requests_sha256: str | None = keyed(None)
    # where
    device: str = keyed("cpu")
    role: str = keyed("measured")  # measured | dequantized-reference
    parallel: dict | None = keyed(None, hash=False)  # GPUs and layout (harness/gpu_plan.py)
    tag: str = keyed("")  # a label that keeps otherwise identical cells apart (bench's speed rounds)

    def cache_fields(self) -> dict:
        """The fields that decide the cell's result."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["key"]}

    def with_(self, **changes: Any) -> "CellSpec":
        return replace(self, **changes)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "CellSpec":
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"cell spec {path} has unknown fields {sorted(unknown)}")
        return cls(**data)
