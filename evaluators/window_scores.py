"""Scoring a cell's windows: perplexity per window and token, and KLD and top-1 against fp16's stored top-k
(or, in the reference cell, writing that top-k)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from core.cellspec import CellSpec
from evaluators.kld import (SparseLogprobs, TopK, kld_sparse, kld_topk, top1_agree,
                            top1_agree_sparse)
from evaluators.progress import progress
from evaluators.windows import Windows


def _window_scores(rt, win: Windows, k: int, chunk: int = 4, top_k: int = 0):
    """Yield (window, full log-probs [scored, vocab] or None, sparse log-probs or None); top_k > 0: the rows
    carry their top-k (the reference cell's)."""
    sl = slice(win.first, win.n_ctx - 1)
    if rt.full_logits:
        for w in range(win.n_windows):
            rows = rt.row_logprobs(win.ids[w], keep_from=win.first, top_k=top_k)  # the last position predicts nothing scored
            n = rows.logits.shape[0]
            if n != win.n_ctx - win.first:
                raise RuntimeError(f"runtime returned {n} positions for {win.n_ctx - win.first} asked")
            yield w, rows.rows(0, n - 1), None
        return
    for start in range(0, win.n_windows, chunk):
        ws = list(range(start, min(start + chunk, win.n_windows)))
        got = rt.prompt_logprobs([[int(t) for t in win.ids[w]] for w in ws], k)
        for w, sp in zip(ws, got):
            if len(sp.target_logp) != win.n_ctx - 1:
                raise RuntimeError(f"runtime returned {len(sp.target_logp)} log-probs for a window of {win.n_ctx}")
            yield w, None, SparseLogprobs(sp.target_logp[sl], sp.ids[sl], sp.logp[sl])


def nonfinite_positions(nll: np.ndarray, lse: np.ndarray | None = None) -> int:
    """Scored positions whose log-probability or log-normalizer is NaN or infinite, each position counted once."""
    bad = ~np.isfinite(nll)
    if lse is not None:
        bad |= ~np.isfinite(lse)
    return int(np.count_nonzero(bad))


def score_windows(rt, win: Windows, spec: CellSpec) -> dict:
    """Perplexity (+ KLD or the reference top-k) over every window, streamed a few at a time."""
    ref_dir = Path(spec.reference_dir) if spec.reference_dir else None
    write_ref = spec.write_reference
    if write_ref:
        if not rt.full_logits:
            raise RuntimeError("the reference cell needs a runtime with full logits")
        ref_dir.mkdir(parents=True, exist_ok=True)
    k_sparse = rt.sparse_k
    window_nll, token_nll, kld_all, top1_w, kld_w = [], [], [], [], []
    nonfinite = 0  # scored positions whose logits or log-probs are not finite (NaN / Inf): a broken variant
    t0 = time.perf_counter()
    for w, rows, sparse in _window_scores(rt, win, k_sparse, top_k=int(spec.kld_top_k) if write_ref else 0):
        tgt = win.targets(w).astype(np.int64)
        if rows is not None:
            if tgt.max() >= rows.vocab:
                raise RuntimeError(f"token id {int(tgt.max())} outside the runtime's vocabulary ({rows.vocab})")
            nll = -rows.at(tgt)
        else:
            nll = -sparse.target_logp
        nonfinite += nonfinite_positions(nll, rows.lse if rows is not None else None)
        window_nll.append(float(nll.mean()))
        token_nll.append([float(f"{x:.6g}") for x in nll])
        if write_ref:
            k_ref = int(spec.kld_top_k)
            top = TopK.whole(rows) if k_ref <= 0 else TopK.from_rows(rows, k_ref)
            arrays = {"logp": top.logp} if top.ids is None else {"ids": top.ids, "logp": top.logp}
            np.savez(ref_dir / f"w{w:05d}.npz", **arrays)
        elif ref_dir is not None:
            with np.load(ref_dir / f"w{w:05d}.npz") as z:
                top = TopK(z["ids"] if "ids" in z.files else None, z["logp"])
            if top.logp.shape[0] != len(tgt):
                raise RuntimeError("reference windows do not match this cell's windows")
            if rows is not None:
                k, agree = kld_topk(top, rows), top1_agree(top, rows)
            else:
                k, agree = kld_sparse(top, sparse), top1_agree_sparse(top, sparse)
            kld_all.append(k)
            kld_w.append(float(k.mean()))
            top1_w.append(float(agree.mean()))
        progress(f"window {w + 1}/{win.n_windows}")
    elapsed = time.perf_counter() - t0
    if write_ref:
        (ref_dir / "COMPLETE").write_text(f"{win.n_windows} windows, top-{spec.kld_top_k}\n")
    out = {
        "window_nll": window_nll,
        # every scored token's NLL (6 significant digits): Δp and Cor(ln PPL) against fp16 are taken from these
        "nll_per_token": token_nll,
        "scored_tokens": win.n_windows * win.scored_per_window,
        "eval_seconds": elapsed,
        "eval_tok_s": win.n_windows * win.n_ctx / elapsed,
        "nonfinite_positions": nonfinite,
    }
    if kld_all:
        out["kld"] = {
            "per_window_mean": kld_w,
            "top1_per_window": top1_w,
            # every scored token's KLD, window by window (4 significant digits): the release gate
            # bootstraps tail statistics (p99) over windows from these
            "per_token": [[float(f"{x:.4g}") for x in k] for k in kld_all],
            "top_k": int(spec.kld_top_k),
            "method": (("exact: whole vocabulary" if int(spec.kld_top_k) <= 0 else
                        f"reference top-{spec.kld_top_k} + rest bucket (lower bound)") if rt.full_logits else
                       f"sparse: runtime top-{k_sparse} x reference top-{spec.kld_top_k}"),
        }
    return out
