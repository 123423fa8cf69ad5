"""transformers-compiled runtime: a static KV cache and a compiled decode step, so decode speed measures the
weights' kernels rather than Python. Two decoders:

- `fused` (the default, for the Llama family): the layers in plain torch over fused q/k/v and gate/up
  projections (evaluators/backends/fused_decoder.py, fusion.py), the one-token attention kernel chosen by
  --compiled-attention, the step's layer function compiled and the whole step captured in one CUDA graph
  (graph_decode.py); transformers' modules point into the same tensors and stay the checks' reference;
- `transformers`: transformers' own modules, a StaticCache and torch.compile's reduce-overhead mode
  (static_decode.py), for any architecture, and the one other architectures fall back to.

Reads

- HF safetensors (fp16): float16 on a GPU, float32 on a CPU, as the transformers runtime;
- AWQ GEMM checkpoints through PyTorch's INT4 weight-only kernel (evaluators/backends/int4_tinygemm.py):
  the INT4 weights stay INT4 in memory; bfloat16 activations on a GPU (the kernel's only dtype).

Scoring (logits) runs the same decoder without the cache, so kernel checks read the same kernels."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.options import opt
from core.registry import register_runtime
from evaluators.backends.base import Generation
from evaluators.backends.torch_common import TorchDecodeMixin, package_versions


@dataclass(frozen=True)
class CompiledOptions:
    """transformers-compiled runtime (static KV cache, compiled decode step)"""

    mode: str | None = opt(None, "torch.compile mode of the decode step (default: reduce-overhead on a GPU, "
                                 "default on a CPU; the fused decoder captures its CUDA graph itself)",
                           choices=(None, "default", "reduce-overhead", "max-autotune", "eager"))
    decoder: str = opt("fused", "fused: Llama-family layers over fused q/k/v and gate/up projections; "
                                "transformers: the model's own modules", choices=("fused", "transformers"))
    attention: str = opt("matmul", "the fused decoder's one-token attention over the static cache (matmul: the "
                                   "fastest on an H200, measurements/h200-qwen3-4b-shape/2026-12-02-fused)",
                         choices=("sdpa", "sdpa-grouped", "sdpa-efficient", "matmul", "flex"))


@register_runtime("transformers-compiled", order=2, formats=("hf-safetensors", "hf-awq-gemm"), options=CompiledOptions,
                  prefix="compiled-", summary="static KV cache + torch.compile'd decode; AWQ through torch's INT4 kernel")
class CompiledRuntime(TorchDecodeMixin):
    @classmethod
    def from_spec(cls, spec, options: CompiledOptions) -> "CompiledRuntime":
        # batch 1's cache fits the timed run (prompt + new tokens), so every batch-1 run shares one graph
        n = spec.prefill_tokens + spec.decode_tokens + 1
        return cls(device=spec.device, batch1_len=n if n > 1 else 0, mode=options.mode, decoder=options.decoder,
                   attention=options.attention)

    @classmethod
    def placement(cls, fmt: str) -> str:
        return "single"  # a static cache and CUDA graphs on one GPU

    def __init__(self, device: str = "cpu", batch1_len: int = 0, mode: str | None = None, decoder: str = "fused",
                 attention: str = "matmul") -> None:
        from evaluators.backends.decode_attention import check_kind

        check_kind(attention, device)
        self.notes: list[str] = []
        self.model = self.hf_model = None
        self.device, self.batch1_len, self.mode = device, batch1_len, mode
        self.decoder_kind, self.attention = decoder, attention
        self.kernel = "dense matmul (cuBLAS)" if device != "cpu" else "dense matmul"
        self.facts: dict = {}

    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from evaluators.backends.static_decode import StaticDecoder

        torch.set_num_threads(threads)
        self.torch = torch
        if self.device != "cpu" and not torch.cuda.is_available():
            raise RuntimeError(f"device {self.device} asked for, but torch sees no GPU")
        from evaluators.backends.fused_decoder import unsupported_reason

        fuse = self.decoder_kind == "fused"
        fused_int4 = None
        if fmt == "hf-awq-gemm":
            from evaluators.backends.awq_gemm import read_awq_config
            from evaluators.backends.int4_tinygemm import CUDA_DTYPE, kernel_name, load_awq_int4

            fuse = fuse and self._can_fuse(unsupported_reason(read_awq_config(artifact)))
            self.dtype = torch.float32 if self.device == "cpu" else CUDA_DTYPE
            model, self.facts, fused_int4 = load_awq_int4(artifact, self.device, self.dtype, fuse=fuse)
            self.kernel = kernel_name(self.device)
            self.notes.append(f"AWQ INT4 weights through {self.kernel}, group {self.facts['group_size']}, "
                              f"{self.facts['quantized_linears']} linears repacked at load time; "
                              f"{str(self.dtype).replace('torch.', '')} activations")
        elif fmt == "hf-safetensors":
            self.dtype = torch.float32 if self.device == "cpu" else torch.float16
            model = AutoModelForCausalLM.from_pretrained(artifact, dtype=self.dtype).to(self.device)
            fuse = fuse and self._can_fuse(unsupported_reason(model.config))
        else:
            raise ValueError(f"transformers-compiled does not read {fmt}")
        self.hf_model = self.model = model.eval()
        if fuse:
            self._load_fused(model, fused_int4)
        else:
            self.decoder = StaticDecoder(self.model, self.device, self.mode, batch1_len=self.batch1_len,
                                         notes=self.notes)
            self.notes.append(f"decode: transformers' modules, static KV cache, one-token step compiled by "
                              f"torch.compile (mode '{self.decoder.mode}'"
                              f"{', CUDA graphs' if self.decoder.mode == 'reduce-overhead' else ''}); prefill: the "
                              "model's eager forward")

    def _can_fuse(self, reason: str | None) -> bool:
        if reason:
            self.notes.append(f"fused decoder not used ({reason}): transformers' modules instead")
            self.decoder_kind = "transformers"
        return reason is None

    def _load_fused(self, model, fused_int4) -> None:
        from evaluators.backends.fused_decoder import FusedDecoder
        from evaluators.backends.fused_model import FusedCausalLM
        from evaluators.backends.fusion import layer_projections
        from evaluators.backends.graph_decode import GraphDecoder

        fused = FusedDecoder.from_model(model, layer_projections(model, fused_int4), self.attention)
        self.model = FusedCausalLM(fused, model)
        self.decoder = GraphDecoder(fused, self.device, self.mode, batch1_len=self.batch1_len, notes=self.notes)
        graph = ", the whole step captured in one CUDA graph" if self.decoder.graphs else ""
        self.notes.append(f"decode: fused decoder (q/k/v and gate/up projections fused at load time), static KV "
                          f"cache, one-token attention '{self.attention}', layer step compiled by torch.compile "
                          f"(mode '{self.decoder.mode}'){graph}; prefill and scoring: the same layers, eager")

    def generate_batch(self, prompts: list[list[int]], n_new: int) -> Generation:
        run = self.decoder.generate(prompts, n_new)
        return Generation(run.tokens, run.prefill_s, run.decode_s, n_new)

    def check_decode(self, prompt: list[int], n_new: int) -> dict:
        """The compiled step against transformers' eager forward of the same model on the same tokens
        (static_decode.check_against_eager): for the fused decoder, its fusion, attention kernel and graph too."""
        from evaluators.backends.static_decode import check_against_eager

        return check_against_eager(self.hf_model, self.decoder, prompt, n_new)

    def compile_seconds(self) -> dict:
        """Seconds of each batch size's first decode loop (tracing, compiling, capturing the graph)."""
        return {str(b): s for b, s in self.decoder.first_call_s.items()}

    def versions(self) -> dict[str, str]:
        return package_versions("torch", "transformers")

    def compute_dtype(self) -> str:
        dt = str(self.dtype).replace("torch.", "")
        where = "" if self.device == "cpu" else f" on {self.device}"
        how = f"; fused decoder, attention '{self.attention}'" if self.decoder_kind == "fused" else ""
        if self.facts.get("quantized_linears"):
            return f"int4 weights (AWQ via {self.kernel}), {dt} activations{where}{how}"
        return f"{dt}{where}{how}"
