"""Runtime backends behind one small interface (evaluators.backends.base.Runtime)."""
from __future__ import annotations

from evaluators.backends.base import Runtime

# runtime name -> artifact formats it can read
RUNTIME_FORMATS: dict[str, tuple[str, ...]] = {
    "transformers": ("hf-safetensors", "hf-awq-gemm", "hf-compressed-tensors"),
    "llama.cpp": ("gguf",),
    "vllm": ("hf-safetensors", "hf-awq-gemm", "hf-compressed-tensors", "gguf"),
}
DEFAULT_RUNTIMES = ("transformers", "llama.cpp")
ALL_RUNTIMES = tuple(RUNTIME_FORMATS)

# runtimes that live in their own virtual environment
RUNTIME_VENV: dict[str, str] = {"vllm": "vllm"}  # names under the tool-environment folder (.venvs)


def runtimes_for(fmt: str, enabled: tuple[str, ...] = DEFAULT_RUNTIMES) -> list[str]:
    return [r for r, fmts in RUNTIME_FORMATS.items() if fmt in fmts and r in enabled]


def make_runtime(name: str, options: dict | None = None) -> Runtime:
    options = options or {}
    if name == "transformers":
        from evaluators.backends.transformers_backend import TransformersRuntime

        return TransformersRuntime()
    if name == "llama.cpp":
        from evaluators.backends.llamacpp_backend import LlamaCppRuntime

        return LlamaCppRuntime()
    if name == "vllm":
        from evaluators.backends.vllm_backend import VllmRuntime

        return VllmRuntime(dtype=options.get("vllm_dtype", "auto"),
                           memory_fraction=float(options.get("vllm_memory_fraction", 0.3)),
                           max_logprobs=int(options.get("sparse_top_k", 20)),
                           tokenizer_dir=options.get("tokenizer_dir"))
    raise ValueError(f"unknown runtime {name!r}")
