"""Runtime backends behind one small interface (evaluators.backends.base.Runtime)."""
from __future__ import annotations

from evaluators.backends.base import Runtime

# runtime name -> artifact formats it can read
RUNTIME_FORMATS: dict[str, tuple[str, ...]] = {
    "transformers": ("hf-safetensors", "hf-awq-gemm", "hf-compressed-tensors"),
    "llama.cpp": ("gguf",),
    "vllm": ("hf-safetensors", "hf-awq-gemm", "hf-compressed-tensors", "gguf"),
    "autoawq": ("hf-awq-gemm",),  # AutoAWQ's own INT4 kernels, GPU only
    # static KV cache + compiled decode step; AWQ through torch's INT4 weight-only kernel
    "transformers-compiled": ("hf-safetensors", "hf-awq-gemm"),
}
# runtime -> quantized formats it reads only as an exact dequantized reference (kernel checks)
DEQUANT_READS: dict[str, tuple[str, ...]] = {"transformers": ("gguf",)}
DEFAULT_RUNTIMES = ("transformers", "llama.cpp")
ALL_RUNTIMES = tuple(RUNTIME_FORMATS)

# runtimes that live in their own virtual environment
RUNTIME_VENV: dict[str, str] = {"vllm": "vllm", "autoawq": "autoawq"}  # names under the tool-environment folder (.venvs)


def runtimes_for(fmt: str, enabled: tuple[str, ...] = DEFAULT_RUNTIMES, dequant: bool = False) -> list[str]:
    """Runtimes that read `fmt`; with dequant, also those that read it only as a dequantized reference."""
    return [r for r, fmts in RUNTIME_FORMATS.items()
            if r in enabled and (fmt in fmts or (dequant and fmt in DEQUANT_READS.get(r, ())))]


def make_runtime(name: str, options: dict | None = None) -> Runtime:
    options = options or {}
    if name == "transformers":
        from evaluators.backends.transformers_backend import TransformersRuntime

        return TransformersRuntime(device=options.get("device", "cpu"), hf_config_dir=options.get("hf_config_dir"),
                                   parallel=options.get("parallel"))
    if name == "llama.cpp":
        from evaluators.backends.llamacpp_backend import LlamaCppRuntime

        par = options.get("parallel") or {}
        return LlamaCppRuntime(flash_attn=options.get("flash_attn", "off"), device=options.get("device", "cpu"),
                               gpus=int(par.get("gpus", 1)), split_mode=options.get("llama_split_mode", "layer"))
    if name == "transformers-compiled":
        from evaluators.backends.compiled_backend import CompiledRuntime

        # batch 1's cache fits the timed run (prompt + new tokens), so every batch-1 run shares one graph
        n = int(options.get("prefill_tokens", 0)) + int(options.get("decode_tokens", 0)) + 1
        return CompiledRuntime(device=options.get("device", "cpu"), batch1_len=n if n > 1 else 0,
                               mode=options.get("compile_mode"))
    if name == "autoawq":
        from evaluators.backends.autoawq_backend import AutoAwqRuntime

        return AutoAwqRuntime(device=options.get("device", "cuda"))
    if name == "vllm":
        from evaluators.backends.vllm_backend import VllmRuntime

        return VllmRuntime(dtype=options.get("vllm_dtype", "auto"),
                           memory_fraction=float(options.get("vllm_memory_fraction", 0.3)),
                           max_logprobs=int(options.get("sparse_top_k", 20)),
                           tokenizer_dir=options.get("tokenizer_dir"))
    raise ValueError(f"unknown runtime {name!r}")
