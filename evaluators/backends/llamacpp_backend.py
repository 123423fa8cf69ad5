"""llama.cpp runtime through llama-cpp-python (GGUF). Never import torch in this process:
OpenMP thread pools of torch and ggml spin against each other."""
from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path

import numpy as np

from evaluators.backends.base import Generation, Runtime


class LlamaCppRuntime(Runtime):
    name = "llama.cpp"

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._scorer = None
        self._gen = None
        self._gen_ctx = 0

    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        self.path, self.threads, self.n_ctx = str(artifact), threads, n_ctx
        self._scorer = self._open(n_ctx, logits_all=True)

    def _open(self, n_ctx: int, logits_all: bool):
        from llama_cpp import Llama

        return Llama(
            model_path=self.path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=self.threads,
            n_threads_batch=self.threads, logits_all=logits_all, verbose=False, seed=0,
        )

    def logits(self, ids: np.ndarray) -> np.ndarray:
        llm = self._scorer
        llm.reset()
        llm.eval([int(t) for t in ids])
        return np.array(llm.scores[: len(ids)], dtype=np.float32)

    def generate(self, prompt: list[int], n_new: int) -> Generation:
        need = len(prompt) + n_new + 1
        if self._gen is None or self._gen_ctx < need:
            self._scorer = self._gen = None  # free the all-logits context first
            self._gen_ctx = max(need, 1024)
            self._gen = self._open(self._gen_ctx, logits_all=False)
        llm = self._gen
        n_vocab = llm.n_vocab()

        def last_argmax() -> int:
            return int(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).argmax())

        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        nxt = last_argmax()
        t1 = time.perf_counter()
        out = [nxt]
        for _ in range(n_new):
            llm.eval([nxt])
            nxt = last_argmax()
            out.append(nxt)
        t2 = time.perf_counter()
        return Generation(out, t1 - t0, t2 - t1, n_new)

    def tokenize(self, text: str) -> list[int] | None:
        llm = self._scorer or self._gen
        return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def weight_bytes(self) -> int | None:
        return Path(self.path).stat().st_size

    def versions(self) -> dict[str, str]:
        return {"llama_cpp_python": metadata.version("llama_cpp_python")}

    def compute_dtype(self) -> str:
        return "ggml (weights as stored, f32 activations)"
