"""A long-context cell's measurement (kind "long"): every position of each long window (harness/long_probes.py)
scored in one forward pass with the runtime's context set to the longest window: its NLL, its KLD against the
fp16 reference's top-k (or that top-k, written by the reference cell), and whether the runtime's own top token
is each planted fact's value at every one of the value's positions (the greedy answer, scored exactly)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from evaluators.kld import RowLogprobs, TopK, kld_sparse, kld_topk
from evaluators.progress import progress
from evaluators.windows import LongProbes

ROW_CHUNK = 1024  # positions normalized at once (the logits of an 8k window are 1.6 GB in float32)


def _window_rows(rt, ids: np.ndarray, k: int, top_k: int = 0):
    """Per chunk of positions 0 .. len-2: (first row, RowLogprobs or None, SparseLogprobs or None); top_k > 0:
    the rows carry their top-k (the reference cell's)."""
    n = len(ids)
    if rt.full_logits:
        if getattr(rt, "device", "cpu") != "cpu":  # the row reductions run on the GPU (base.Runtime.row_logprobs)
            rows = rt.row_logprobs(ids, keep_from=0, top_k=top_k)
            if rows.logits.shape[0] != n:
                raise RuntimeError(f"runtime returned {rows.logits.shape[0]} positions for a window of {n}")
            for a in range(0, n - 1, ROW_CHUNK):
                yield a, rows.rows(a, min(a + ROW_CHUNK, n - 1)), None
            return
        logits = rt.logits(ids, keep_from=0)
        if logits.shape[0] != n:
            raise RuntimeError(f"runtime returned {logits.shape[0]} positions for a window of {n}")
        for a in range(0, n - 1, ROW_CHUNK):
            b = min(a + ROW_CHUNK, n - 1)
            yield a, RowLogprobs.from_logits(logits[a:b]), None
        return
    sp = rt.prompt_logprobs([[int(t) for t in ids]], k)[0]
    if len(sp.target_logp) != n - 1:
        raise RuntimeError(f"runtime returned {len(sp.target_logp)} log-probs for a window of {n}")
    yield 0, None, sp


def score_long(rt, spec) -> dict:
    """The "long" section of a cell's result."""
    probes = LongProbes.load(Path(spec.windows))
    ref_dir = Path(spec.reference_dir) if spec.reference_dir else None
    if spec.write_reference:
        if not rt.full_logits:
            raise RuntimeError("the reference cell needs a runtime with full logits")
        ref_dir.mkdir(parents=True, exist_ok=True)
    by_window: dict[int, list] = {}
    for i, nd in enumerate(probes.needles):
        by_window.setdefault(nd.window, []).append(i)
    hits: list[bool | None] = [None] * len(probes.needles)
    answers: list[list[int] | None] = [None] * len(probes.needles)
    nll_w, kld_w, nonfinite = [], [], 0
    t0 = time.perf_counter()
    for w, ids in enumerate(probes.windows):
        ids = np.asarray(ids, dtype=np.int64)
        nll, kld, top1 = np.empty(len(ids) - 1), np.empty(len(ids) - 1), np.empty(len(ids) - 1, dtype=np.int64)
        ref_ids, ref_logp = [], []
        ref = None
        if ref_dir is not None and not spec.write_reference:
            with np.load(ref_dir / f"long-w{w:03d}.npz") as z:
                ref = TopK(z["ids"] if "ids" in z.files else None, z["logp"])
            if ref.logp.shape[0] != len(ids) - 1:
                raise RuntimeError("the reference's long windows do not match this cell's")
        top_k = int(spec.kld_top_k) if spec.write_reference else 0
        for a, rows, sparse in _window_rows(rt, ids, rt.sparse_k, top_k=top_k):
            b = a + (rows.logits.shape[0] if rows is not None else len(sparse.target_logp))
            tgt = ids[a + 1: b + 1]
            if rows is not None:
                nll[a:b] = -rows.at(tgt)
                nonfinite += int(np.count_nonzero(~np.isfinite(nll[a:b]) | ~np.isfinite(rows.lse)))
                top1[a:b] = rows.argmax()
                if spec.write_reference:
                    top = TopK.whole(rows) if int(spec.kld_top_k) <= 0 else TopK.from_rows(rows, int(spec.kld_top_k))
                    ref_ids.append(top.ids)
                    ref_logp.append(top.logp)
                elif ref is not None:
                    kld[a:b] = kld_topk(TopK(None if ref.ids is None else ref.ids[a:b], ref.logp[a:b]), rows)
            else:
                nll[a:b] = -sparse.target_logp
                nonfinite += int(np.count_nonzero(~np.isfinite(nll[a:b])))
                top1[a:b] = sparse.ids[:, 0]
                if ref is not None:
                    kld[a:b] = kld_sparse(ref, sparse)
        if spec.write_reference:
            arrays = {"logp": np.concatenate(ref_logp)}
            if ref_ids[0] is not None:
                arrays["ids"] = np.concatenate(ref_ids)
            np.savez(ref_dir / f"long-w{w:03d}.npz", **arrays)
        for i in by_window.get(w, []):
            nd = probes.needles[i]
            rows_at = np.arange(nd.answer_start - 1, nd.answer_start - 1 + nd.answer_len)
            got = top1[rows_at]
            answers[i] = [int(t) for t in got]
            hits[i] = bool(np.array_equal(got, ids[rows_at + 1]))
        nll_w.append([float(f"{x:.6g}") for x in nll])
        if ref is not None:
            kld_w.append([float(f"{x:.4g}") for x in kld])
        progress(f"long window {w + 1}/{len(probes.windows)} ({len(ids)} tokens)")
    if spec.write_reference:
        (ref_dir / "LONG-COMPLETE").write_text(f"{len(probes.windows)} long windows, top-{spec.kld_top_k}\n")
    return {"nll_per_position": nll_w, "kld_per_position": kld_w or None, "needle_hits": hits,
            "needle_answers": answers, "seconds": time.perf_counter() - t0,
            "tokens": int(sum(len(w) for w in probes.windows)), "nonfinite_positions": nonfinite,
            "n_ctx": int(spec.n_ctx)}
