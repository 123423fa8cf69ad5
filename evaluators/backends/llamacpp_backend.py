"""llama.cpp runtime through llama-cpp-python (GGUF), on CPU or with every layer offloaded to a GPU
(a CUDA build of the same llama.cpp, e.g. through LLAMA_CPP_LIB_PATH). Never import torch in this
process: OpenMP thread pools of torch and ggml spin against each other."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from core.options import opt
from core.registry import register_runtime
from evaluators.backends.base import Generation, Runtime
from evaluators.kld import RowLogprobs, SparseLogprobs, TopK


@dataclass(frozen=True)
class LlamaCppOptions:
    """llama.cpp runtime (llama-cpp-python)"""

    # off by default: its CPU path rounds Q to f16 (on the default model that moves Q4_K_M's PPL by +0.7%);
    # llama-perplexity and llama-bench default to auto (= on for CPU)
    flash_attn: str = opt("off", "flash attention (off: exact attention; on: what llama.cpp's tools pick on CPU)",
                          choices=("off", "on"))
    split_mode: str = opt("layer", "how a model is split across GPUs (llama.cpp's -sm)", choices=("layer", "row"))


UBATCH = 512  # positions per micro-batch of a scoring decode


# ggml's threads sleep between graph runs under PASSIVE (decode a quarter slower), and libllama must load
# before numpy (evaluators/cell_process.py says why)
@register_runtime("llama.cpp", order=1, formats=("gguf",), options=LlamaCppOptions, prefix="llama-", default=True,
                  passive_omp=False, preload="llama_cpp", summary="llama.cpp through llama-cpp-python (GGUF)")
class LlamaCppRuntime(Runtime):
    @classmethod
    def from_spec(cls, spec, options: LlamaCppOptions) -> "LlamaCppRuntime":
        return cls(flash_attn=options.flash_attn, device=spec.device, gpus=int((spec.parallel or {}).get("gpus", 1)),
                   split_mode=options.split_mode)

    @classmethod
    def gpu_layout(cls, n_gpus: int, fmt: str, shape, options: LlamaCppOptions) -> str:
        return f"llama.cpp split by {options.split_mode}"

    def __init__(self, flash_attn: str = "off", device: str = "cpu", gpus: int = 1, split_mode: str = "layer") -> None:
        if flash_attn not in ("on", "off"):
            raise ValueError(f"flash_attn must be 'on' or 'off', got {flash_attn!r}")
        self.flash_attn = flash_attn == "on"
        self.device = device
        if split_mode not in ("layer", "row"):
            raise ValueError(f"split_mode must be 'layer' or 'row', got {split_mode!r}")
        self.gpus, self.split_mode = gpus, split_mode
        self.notes: list[str] = []
        self._scorer = None  # the llama_cpp.Llama that holds the model and the scoring context
        self._contexts: dict = {}  # decoding contexts, sized per run

    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        self.path, self.threads, self.n_ctx = str(artifact), threads, n_ctx
        if self.device != "cpu":
            import llama_cpp

            if not llama_cpp.llama_supports_gpu_offload():
                raise RuntimeError("this llama.cpp build cannot offload to a GPU (build it with -DGGML_CUDA=ON "
                                   "and point LLAMA_CPP_LIB_PATH at it)")
            self.notes.append("every layer offloaded to the GPU (n_gpu_layers = all)" if self.gpus <= 1 else
                              f"every layer offloaded, split across {self.gpus} GPUs by {self.split_mode} "
                              f"(llama.cpp -sm {self.split_mode}, even tensor split)")
        self._scorer = self._open(n_ctx)

    def _open(self, n_ctx: int):
        """The scoring context: one decode per window, computed UBATCH positions at a time (llama-perplexity's
        default -ub; a long window in one micro-batch would hold an n_ctx × n_ctx attention matrix per head)."""
        from llama_cpp import Llama

        return Llama(
            model_path=self.path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=min(n_ctx, UBATCH), n_threads=self.threads,
            n_threads_batch=self.threads, logits_all=False, flash_attn=self.flash_attn, verbose=False, seed=0,
            n_gpu_layers=-1 if self.device != "cpu" else 0, **self.split_kwargs(),
        )

    def split_kwargs(self) -> dict:
        """llama.cpp's multi-GPU settings: by layer or by row, the same share on each GPU, GPU 0 as main."""
        if self.device == "cpu" or self.gpus <= 1:
            return {}
        import llama_cpp

        mode = llama_cpp.LLAMA_SPLIT_MODE_ROW if self.split_mode == "row" else llama_cpp.LLAMA_SPLIT_MODE_LAYER
        return {"split_mode": mode, "main_gpu": 0, "tensor_split": [1.0] * self.gpus}

    def logits(self, ids: np.ndarray, keep_from: int = 0) -> np.ndarray:
        """One llama_decode of the whole sequence that asks for logits at keep_from.. only, as
        llama-perplexity does; returns a view of llama.cpp's output buffer (no copy)."""
        import llama_cpp

        self._model()
        llm = self._scorer
        n = len(ids)
        if n > self.n_ctx:
            raise ValueError(f"sequence of {n} tokens is longer than the context ({self.n_ctx})")
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        batch = llm._batch
        batch.set_batch(batch=[int(t) for t in ids], n_past=0, logits_all=False)
        for i in range(n):
            batch.batch.logits[i] = i >= keep_from
        llm._ctx.decode(batch)
        ptr = llama_cpp.llama_get_logits(llm._ctx.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n - keep_from, llm.n_vocab()))

    def generate(self, prompt: list[int], n_new: int) -> Generation:
        return self.generate_batch([prompt], n_new)

    TASK_BATCH_TOKENS = 512  # tokens per llama_decode for log-likelihood requests (measured: 512 ~ 1024 ~ one at a time)
    TASK_BATCH_SEQS = 32

    def prompt_logprobs(self, seqs: list[list[int]], k: int, last: int | list[int] | None = None) -> list[SparseLogprobs]:
        """Log-likelihood requests packed into multi-sequence batches (a sequence id each, one
        llama_decode per pack), logits only for each sequence's last `last` positions."""
        if last is None:
            return super().prompt_logprobs(seqs, k, last)
        import llama_cpp
        from llama_cpp import _internals

        lasts = last if isinstance(last, list) else [last] * len(seqs)
        budget = max(self.TASK_BATCH_TOKENS, max(len(x) for x in seqs))
        ctx = self._decode_context(budget, budget, self.TASK_BATCH_SEQS)
        vocab = self._model().n_vocab()
        out: list[SparseLogprobs | None] = [None] * len(seqs)
        order = list(range(len(seqs)))
        batch = _internals.LlamaBatch(n_tokens=budget, embd=0, n_seq_max=1, verbose=False)
        try:
            while order:
                pack, used = [], 0
                while order and len(pack) < self.TASK_BATCH_SEQS and used + len(seqs[order[0]]) - 1 <= budget:
                    used += len(seqs[order[0]]) - 1
                    pack.append(order.pop(0))
                ctx.kv_cache_clear()
                batch.batch.n_tokens = 0
                rows_of = []
                for sid, i in enumerate(pack):
                    x = [int(t) for t in seqs[i][:-1]]
                    r = min(lasts[i], len(x))
                    start = batch.batch.n_tokens
                    batch.add_sequence(x, sid, False)
                    for j in range(len(x)):
                        batch.batch.logits[start + j] = j >= len(x) - r
                    rows_of.append(r)
                ctx.decode(batch)
                total = sum(rows_of)
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx.ctx), shape=(total, vocab))
                at = 0
                for i, r in zip(pack, rows_of):
                    rows = RowLogprobs.from_logits(np.array(logits[at:at + r]))
                    at += r
                    top = TopK.from_rows(rows, k)
                    tgt = np.asarray(seqs[i][len(seqs[i]) - r:], dtype=np.int64)
                    out[i] = SparseLogprobs(rows.at(tgt), top.ids.astype(np.int64), top.logp.astype(np.float64))
        finally:
            batch.close()
        return out

    def _decode_context(self, n_ctx: int, n_batch: int, n_seq: int):
        """A context of exactly n_ctx cells on the loaded model (no second copy of the weights), as
        llama-bench sizes its own (the KV cache's padded length sets the attention work per token)."""
        import llama_cpp
        from llama_cpp import _internals

        key = (n_ctx, n_batch, n_seq)
        if key not in self._contexts:
            for ctx in self._contexts.values():
                ctx.close()
            self._contexts = {}
            params = llama_cpp.llama_context_default_params()
            params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = n_ctx, n_batch, min(512, n_batch), n_seq
            params.n_threads = params.n_threads_batch = self.threads
            params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn
                                      else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
            self._contexts[key] = _internals.LlamaContext(model=self._model(), params=params, verbose=False)
        ctx = self._contexts[key]
        ctx.kv_cache_clear()
        return ctx

    def _model(self):
        if self._scorer is None:
            self._scorer = self._open(self.n_ctx)
        return self._scorer._model

    def generate_batch(self, prompts: list[list[int]], n_new: int) -> Generation:
        """Greedy decoding of one or more equal-length prompts in one context (a sequence id each):
        one llama_decode for all prompts, then one per step with a token per sequence. Tokens of the
        first sequence are returned; the context holds exactly the cells the run uses."""
        import llama_cpp
        from llama_cpp import _internals

        b, n = len(prompts), len(prompts[0])
        ctx = self._decode_context(b * (n + n_new), b * n, b)
        vocab = self._model().n_vocab()
        prefill = _internals.LlamaBatch(n_tokens=b * n, embd=0, n_seq_max=1, verbose=False)
        step = _internals.LlamaBatch(n_tokens=b, embd=0, n_seq_max=1, verbose=False)
        try:
            prefill.batch.n_tokens = 0
            for s, p in enumerate(prompts):
                prefill.add_sequence([int(t) for t in p], s, False)
            t0 = time.perf_counter()
            ctx.decode(prefill)
            nxt = [int(np.ctypeslib.as_array(ctx.get_logits_ith((s + 1) * n - 1), shape=(vocab,)).argmax())
                   for s in range(b)]
            t1 = time.perf_counter()
            out = [nxt[0]]
            sb = step.batch
            for k in range(n_new):
                sb.n_tokens = b
                for s in range(b):
                    sb.token[s], sb.pos[s], sb.n_seq_id[s], sb.logits[s] = nxt[s], n + k, 1, True
                    sb.seq_id[s][0] = s
                ctx.decode(step)
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx.ctx), shape=(b, vocab))
                nxt = [int(t) for t in logits.argmax(-1)]
                out.append(nxt[0])
            t2 = time.perf_counter()
        finally:
            step.close()
            prefill.close()
        return Generation(out, t1 - t0, t2 - t1, n_new)

    GEN_SEQS = 16  # prompts decoded together in one context (a sequence id each)
    GEN_SEQS_GPU = 64  # on a GPU: a step of 16 sequences leaves most of it idle

    def generate_many(self, prompts: list[list[int]], n_new: int) -> list[list[int]]:
        """Greedy continuations of several prompts in one context, each a function of its own prompt only.

        Each prompt is prefilled in a llama_decode of its own (prompts decoded together in one batch took
        other kernel paths by the batch's size, and a prompt's continuation changed with the prompts beside
        it: 24 of 64 on the default model's Q4_1 file when the same prompts were shuffled), and each sequence
        has its own KV stream. The steps then decode one token per sequence together; a lone prompt is decoded
        beside a copy of itself, because a one-token batch takes llama.cpp's matrix-vector path, which rounds
        differently from the batched one."""
        import llama_cpp
        from llama_cpp import _internals

        out: list = []
        vocab = self._model().n_vocab()
        n = self.GEN_SEQS if self.device == "cpu" else self.GEN_SEQS_GPU
        for s in range(0, len(prompts), n):
            group = [[int(t) for t in p] for p in prompts[s:s + n]]
            real = len(group)
            if real == 1:
                group = group * 2
            b, longest = len(group), max(len(p) for p in group)
            per_seq = longest + n_new
            ctx = self._decode_context(per_seq * b, max(longest, b), b)
            batch = _internals.LlamaBatch(n_tokens=max(longest, b), embd=0, n_seq_max=1, verbose=False)
            try:
                nxt = []
                for q, p in enumerate(group):
                    batch.batch.n_tokens = 0
                    batch.add_sequence(p, q, False)
                    ctx.decode(batch)
                    nxt.append(int(np.ctypeslib.as_array(ctx.get_logits_ith(len(p) - 1), shape=(vocab,)).argmax()))
                toks = [[t] for t in nxt]
                sb = batch.batch
                for k in range(n_new - 1):
                    sb.n_tokens = b
                    for q in range(b):
                        sb.token[q], sb.pos[q], sb.n_seq_id[q], sb.logits[q] = nxt[q], len(group[q]) + k, 1, True
                        sb.seq_id[q][0] = q
                    ctx.decode(batch)
                    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx.ctx), shape=(b, vocab))
                    nxt = [int(t) for t in logits.argmax(-1)]
                    for q in range(b):
                        toks[q].append(nxt[q])
            finally:
                batch.close()
            out += toks[:real]
        return out

    def tokenize(self, text: str) -> list[int] | None:
        self._model()
        return list(self._scorer.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def weight_bytes(self) -> int | None:
        return Path(self.path).stat().st_size

    def versions(self) -> dict[str, str]:
        import llama_cpp

        out = {"llama_cpp_python": metadata.version("llama_cpp_python"),
               "gpu_offload": str(bool(llama_cpp.llama_supports_gpu_offload())),
               "flash_attn": "on" if self.flash_attn else "off",
               "split": f"{self.gpus} GPUs by {self.split_mode}" if self.gpus > 1 else "one device",
               # the build's compiled-in features (CUDA: ARCHS, USE_GRAPHS, FA_QUANTS, ...)
               "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()}
        if os.environ.get("QC_LLAMA_BUILD_FLAGS"):  # the cmake flags of a build made by a job script
            out["build_flags"] = os.environ["QC_LLAMA_BUILD_FLAGS"]
        return out

    def compute_dtype(self) -> str:
        where = "GPU" if self.device != "cpu" else "CPU"
        return f"ggml on {where} (weights as stored, f32 activations" + (", flash attention)" if self.flash_attn else ")")
