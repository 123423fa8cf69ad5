"""Greedy decoding with a static KV cache and a compiled one-token step, for any transformers causal LM
(the recipe of transformers' own "static cache and torch.compile" guide and of gpt-fast).

The prompt is prefilled by the model's ordinary (eager) forward into a transformers StaticCache; each
following token is one call of the compiled step, whose inputs and outputs stay on the device, so
the loop never waits for the GPU. On CUDA the step is compiled with mode "reduce-overhead": inductor
fuses the small operations and the whole step replays as one CUDA graph, so the time measured is the
kernels', not Python's. One cache (and one compiled graph) per batch size, reused across runs."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class StaticRun:
    tokens: list[int]  # the first sequence's first token and its n_new continuations
    prefill_s: float
    decode_s: float
    step_logits: list = field(default_factory=list)  # [batch, vocab] per decode step, when asked for


def cache_length(batch: int, n_prompt: int, n_new: int, batch1_len: int, cache_len: int | None = None) -> int:
    """The static cache's length for a run: attention reads the whole cache at every step, so as short as the run
    allows, in steps of 128; at batch 1 at least batch1_len, so short runs share the timed run's cache and graph."""
    need = max(n_prompt + n_new + 1, batch1_len if batch == 1 else 0)
    return cache_len or -(-need // 128) * 128


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StaticDecoder:
    def __init__(self, model, device: str, mode: str | None = None, batch1_len: int = 0,
                 notes: list[str] | None = None) -> None:
        """mode: torch.compile's mode for the step ("reduce-overhead" on CUDA, "default" on CPU),
        or "eager" for the same loop uncompiled. batch1_len: the least cache length at batch 1, so that
        the short runs (sanity generation, decode check) share the timed run's cache and graph."""
        self.model, self.device, self.batch1_len = model, device, batch1_len
        self.notes = notes if notes is not None else []  # where a compile failure is stated
        self.mode = mode or ("reduce-overhead" if device.startswith("cuda") else "default")
        self._caches: dict[int, object] = {}
        self._max_len: dict[int, int] = {}
        self.first_call_s: dict[int, float] = {}  # batch -> seconds of its first decode loop (compiling)
        self.compile_error: str | None = None
        if self.mode == "eager":
            self._step = self._one_step
        else:
            self._step = torch.compile(self._one_step, mode=self.mode, fullgraph=True)

    def _one_step(self, tok: torch.Tensor, cache):
        logits = self.model(input_ids=tok, past_key_values=cache, use_cache=True).logits[:, -1]
        return logits.argmax(-1, keepdim=True), logits

    def _call_step(self, cur, cache):
        """The compiled step; if compiling fails, the eager step from then on, and the failure on record."""
        try:
            return self._step(cur, cache)
        except Exception as e:  # noqa: BLE001 (inductor/dynamo errors have no common base class)
            if self._step == self._one_step:
                raise
            self.compile_error = f"{type(e).__name__}: {e}"[:400]
            self._step, self.mode = self._one_step, "eager (compiling failed)"
            self.notes.append(f"COMPILING FAILED, decode ran the eager step: {self.compile_error}")
            return self._step(cur, cache)

    def _cache(self, batch: int, length: int):
        """One StaticCache per batch size, long enough for every run seen (a longer run makes a new one)."""
        from transformers import StaticCache

        if batch not in self._caches or self._max_len[batch] < length:
            self._caches[batch] = StaticCache(config=self.model.config, max_cache_len=length)
            self._max_len[batch] = length
        cache = self._caches[batch]
        cache.reset()
        return cache

    def _sync(self) -> None:
        sync(self.device)

    def generate(self, prompts: list[list[int]], n_new: int, keep_logits: bool = False,
                 cache_len: int | None = None) -> StaticRun:
        """Greedy: prefill the equal-length prompts together, then n_new compiled single-token steps."""
        batch, n_prompt = len(prompts), len(prompts[0])
        cache = self._cache(batch, cache_length(batch, n_prompt, n_new, self.batch1_len, cache_len))
        graphs = self.device.startswith("cuda") and self.mode == "reduce-overhead"
        first = batch not in self.first_call_s
        with torch.no_grad():
            x = torch.tensor(prompts, dtype=torch.long, device=self.device)
            self._sync()
            t0 = time.perf_counter()
            logits = self.model(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
            # every step's input is a fresh contiguous [batch, 1] tensor: the same strides each call, so the
            # compiled step is never recompiled (a slice of one token buffer would change strides with n_new)
            cur = logits.argmax(-1, keepdim=True)
            self._sync()
            t1 = time.perf_counter()
            toks, kept = [cur], []
            for _ in range(n_new):
                if graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                tok, step_logits = self._call_step(cur, cache)
                cur = tok.clone()  # out of the graph's output buffer before the next replay
                toks.append(cur)
                if keep_logits:
                    kept.append(step_logits.float().clone())
            self._sync()
            t2 = time.perf_counter()
            out_tokens = torch.cat(toks, dim=1)
        if first:
            self.first_call_s[batch] = t2 - t1
        return StaticRun([int(t) for t in out_tokens[0].tolist()], t1 - t0, t2 - t1, kept)


def check_against_eager(model, decoder: StaticDecoder, prompt: list[int], n_new: int) -> dict:
    """The compiled step's logits at each decoded position against the model's ordinary forward over the
    same tokens (teacher-forced, no cache): relative mean error and top-1 agreement."""
    run = decoder.generate([prompt], n_new, keep_logits=True)
    seq = prompt + run.tokens[:n_new]  # the tokens each step was fed
    with torch.no_grad():
        x = torch.tensor([seq], dtype=torch.long, device=decoder.device)
        ref = model(input_ids=x, use_cache=False).logits[0, len(prompt):].float()
    got = torch.cat([s[:1] for s in run.step_logits])
    err = (got - ref).abs()
    return {"positions": n_new, "mean_abs_err": float(err.mean()), "max_abs_err": float(err.max()),
            "rel_mean_err": float(err.mean() / ref.abs().mean()),
            "top1_agreement": float((got.argmax(-1) == ref.argmax(-1)).float().mean())}
