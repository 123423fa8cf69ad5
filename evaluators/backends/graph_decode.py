"""Greedy decoding over the fused decoder (evaluators/backends/fused_decoder.py) with a static KV cache:
the prompt prefilled by the eager forward, then one-token steps whose layer function is compiled by
torch.compile (one compiled function serves every layer: the weights are its inputs) and, on CUDA, the
whole step (embedding, every layer, head, argmax, the next position) captured by hand in one CUDA graph
over static input buffers, as gpt-fast and vLLM capture theirs. Issue 23's probe measured why by hand:
the same decoder reached 279.5 tok/s so and 83 tok/s through mode="reduce-overhead" with the caches
closed over.

The interface is static_decode.StaticDecoder's (generate, first_call_s, mode, notes), so the runtime,
the speed protocol, the decode check and the profile read either."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from evaluators.backends.fused_decoder import FusedDecoder, layer_forward, visible
from evaluators.backends.static_decode import StaticRun, cache_length, sync


@dataclass
class _Slot:
    """One batch size's static buffers (and CUDA graph): inputs, cache, outputs."""

    cache: list
    tok: torch.Tensor  # [B, 1] the token each step reads; the step writes the next one here
    pos: torch.Tensor  # [1] its position (every sequence's); the step advances it
    slot_ids: torch.Tensor  # arange(cache length)
    logits: torch.Tensor | None = None  # the step's output
    graph: object = None


def _raise_recompile_limit(n: int) -> None:
    """One code object (the layer function) is compiled once per batch size and per model in a process;
    torch's default limit (8) would turn later compilations into hard failures."""
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), n))


class GraphDecoder:
    def __init__(self, decoder: FusedDecoder, device: str, mode: str | None = None, batch1_len: int = 0,
                 notes: list[str] | None = None) -> None:
        """mode: torch.compile's mode for the layer function ("default"; "eager": uncompiled). On CUDA the
        step is captured in a CUDA graph either way."""
        self.decoder, self.device, self.batch1_len = decoder, device, batch1_len
        self.notes = notes if notes is not None else []
        # the step is captured by hand: torch.compile's own CUDA graphs (reduce-overhead, max-autotune) stay off
        self.mode = {None: "default", "reduce-overhead": "default",
                     "max-autotune": "max-autotune-no-cudagraphs"}.get(mode, mode)
        self.graphs = device.startswith("cuda")
        self._slots: dict[int, _Slot] = {}
        self.first_call_s: dict[int, float] = {}
        self._compiled = None
        if self.mode != "eager":
            _raise_recompile_limit(64)
            self._compiled = torch.compile(self._layer, mode=self.mode, fullgraph=True, dynamic=False)
            decoder.layer = self._compiled_layer

    def _layer(self, *args):
        return layer_forward(self.decoder.shape, *args)

    def _compiled_layer(self, *args):
        h, slots = args[1], args[-1]
        if h.shape[1] != 1 or slots is None:  # prefill, scoring, growing caches: eager (one compiled shape)
            return self._layer(*args)
        return self._compiled(*args)

    def _fall_back(self, e: Exception) -> None:
        self.decoder.layer, self.mode = self._layer, "eager (compiling failed)"
        self.notes.append(f"COMPILING FAILED, decode ran the eager step: {type(e).__name__}: {e}"[:460])

    def _run_step(self, s: _Slot) -> None:
        s.logits = self.decoder.step(s.tok, s.pos, s.cache, s.slot_ids)
        s.tok.copy_(s.logits.argmax(-1, keepdim=True))
        s.pos.add_(1)

    def _slot(self, batch: int, length: int) -> _Slot:
        """One cache (and graph) per batch size, long enough for every run seen (a longer run makes anew)."""
        s = self._slots.get(batch)
        if s is not None and s.slot_ids.shape[0] >= length:
            return s
        self._slots.pop(batch, None)
        d = self.decoder
        # the step reads the RoPE table by address: made once, before any capture, for every position the
        # model takes; a longer run (past max_position_embeddings) makes it anew and retires every captured
        # step, whose graph would read the freed table
        if d.ensure_rope(max(length, d.max_positions)):
            self._slots.clear()
        s = _Slot(d.new_cache(batch, length), torch.zeros(batch, 1, dtype=torch.long, device=self.device),
                  torch.zeros(1, dtype=torch.long, device=self.device), torch.arange(length, device=self.device))
        try:
            self._run_step(s)  # the first call compiles
        except Exception as e:  # noqa: BLE001 (inductor/dynamo errors have no common base class)
            if d.layer == self._layer:
                raise
            self._fall_back(e)
            self._run_step(s)
        if self.graphs:
            s.graph = self._capture(s)
        self._slots[batch] = s
        return s

    def _capture(self, s: _Slot):
        """The step as one CUDA graph (warmed up on a side stream first, as PyTorch's CUDA-graph notes ask);
        if capturing fails, the step runs uncaptured and the failure is on record."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._run_step(s)
        torch.cuda.current_stream().wait_stream(side)
        try:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                self._run_step(s)
            return g
        except Exception as e:  # noqa: BLE001
            torch.cuda.synchronize()
            self.graphs = False
            self.notes.append(f"CUDA GRAPH CAPTURE FAILED, decode ran the step uncaptured: {type(e).__name__}: {e}"[:400])
            return None

    def _sync(self) -> None:
        sync(self.device)

    def generate(self, prompts: list[list[int]], n_new: int, keep_logits: bool = False,
                 cache_len: int | None = None) -> StaticRun:
        """Greedy: prefill the equal-length prompts together, then n_new single-token steps."""
        batch, n_prompt = len(prompts), len(prompts[0])
        first = batch not in self.first_call_s
        tc = time.perf_counter()
        with torch.no_grad():
            s = self._slot(batch, cache_length(batch, n_prompt, n_new, self.batch1_len, cache_len))
            setup_s = time.perf_counter() - tc
            d = self.decoder
            x = torch.tensor(prompts, dtype=torch.long, device=self.device)
            self._sync()
            t0 = time.perf_counter()
            slots = torch.arange(n_prompt, device=self.device)
            valid = torch.ones(batch, s.slot_ids.shape[0], dtype=torch.bool, device=self.device)
            h, _ = d.hidden(x, slots[None].expand(batch, n_prompt), visible(slots, valid), s.cache, slots)
            cur = d.logits(h[:, -1:])[:, -1].argmax(-1, keepdim=True)
            s.tok.copy_(cur)
            s.pos.fill_(n_prompt)
            self._sync()
            t1 = time.perf_counter()
            toks, kept = [cur], []
            for _ in range(n_new):
                if s.graph is not None:
                    s.graph.replay()
                else:
                    self._run_step(s)
                toks.append(s.tok.clone())
                if keep_logits:
                    kept.append(s.logits.float().clone())
            self._sync()
            t2 = time.perf_counter()
            out_tokens = torch.cat(toks, dim=1)
        if first:  # compiling and capturing, with the first decode loop (as StaticDecoder counts it)
            self.first_call_s[batch] = setup_s + (t2 - t1)
        return StaticRun([int(t) for t in out_tokens[0].tolist()], t1 - t0, t2 - t1, kept)
