"""Runtime backends behind one small interface (evaluators.backends.base.Runtime)."""
from __future__ import annotations

from evaluators.backends.base import Runtime

# runtime name -> artifact formats it can read
RUNTIME_FORMATS: dict[str, tuple[str, ...]] = {
    "transformers": ("hf-safetensors", "hf-awq-gemm", "hf-compressed-tensors"),
    "llama.cpp": ("gguf",),
}


def runtimes_for(fmt: str) -> list[str]:
    return [r for r, fmts in RUNTIME_FORMATS.items() if fmt in fmts]


def make_runtime(name: str) -> Runtime:
    if name == "transformers":
        from evaluators.backends.transformers_backend import TransformersRuntime

        return TransformersRuntime()
    if name == "llama.cpp":
        from evaluators.backends.llamacpp_backend import LlamaCppRuntime

        return LlamaCppRuntime()
    raise ValueError(f"unknown runtime {name!r}")
