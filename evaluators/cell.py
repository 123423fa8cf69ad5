"""One (variant, runtime) evaluation cell, run in its own subprocess:

    python -m evaluators.cell SPEC.json RESULT.json

A crash or out-of-memory here is a failed cell for the harness, never a failed run.
Measures: perplexity per window, KL divergence / top-1 agreement against the reference's top-k
(or writes that reference), a short greedy generation, prefill/decode speed, peak RSS."""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from evaluators.backends import make_runtime
from evaluators.kld import TopK, kld_topk, log_softmax, summarize, top1_agree
from evaluators.windows import Windows


def progress(msg: str) -> None:
    print(f"PROGRESS {msg}", flush=True)


def score_windows(rt, win: Windows, spec: dict) -> dict:
    """Perplexity (+ KLD or the reference top-k) over every window, streamed one at a time."""
    ref_dir = Path(spec["reference_dir"]) if spec.get("reference_dir") else None
    write_ref = bool(spec.get("write_reference"))
    if write_ref:
        ref_dir.mkdir(parents=True, exist_ok=True)
    window_nll, kld_all, top1_w, kld_w = [], [], [], []
    t0 = time.perf_counter()
    for w in range(win.n_windows):
        logits = rt.logits(win.ids[w])
        if logits.shape[0] != win.n_ctx:
            raise RuntimeError(f"runtime returned {logits.shape[0]} positions for a window of {win.n_ctx}")
        logp = log_softmax(logits[win.first : win.n_ctx - 1])
        tgt = win.targets(w).astype(np.int64)
        if tgt.max() >= logp.shape[1]:
            raise RuntimeError(f"token id {int(tgt.max())} outside the runtime's vocabulary ({logp.shape[1]})")
        nll = -logp[np.arange(len(tgt)), tgt]
        window_nll.append(float(nll.mean()))
        if write_ref:
            top = TopK.from_logprobs(logp, int(spec["kld_top_k"]))
            np.savez(ref_dir / f"w{w:05d}.npz", ids=top.ids, logp=top.logp)
        elif ref_dir is not None:
            with np.load(ref_dir / f"w{w:05d}.npz") as z:
                top = TopK(z["ids"], z["logp"])
            if top.ids.shape[0] != logp.shape[0]:
                raise RuntimeError("reference windows do not match this cell's windows")
            k = kld_topk(top, logp)
            kld_all.append(k)
            kld_w.append(float(k.mean()))
            top1_w.append(float(top1_agree(top, logp).mean()))
        progress(f"window {w + 1}/{win.n_windows}")
    elapsed = time.perf_counter() - t0
    if write_ref:
        (ref_dir / "COMPLETE").write_text(f"{win.n_windows} windows, top-{spec['kld_top_k']}\n")
    out = {
        "window_nll": window_nll,
        "scored_tokens": win.n_windows * win.scored_per_window,
        "eval_seconds": elapsed,
        "eval_tok_s": win.n_windows * win.n_ctx / elapsed,
    }
    if kld_all:
        allk = np.concatenate(kld_all)
        out["kld"] = {
            "per_window_mean": kld_w,
            "top1_per_window": top1_w,
            "summary": summarize(allk),
            "percentiles": [float(x) for x in np.percentile(allk, np.arange(0, 101))],
            "top_k": int(spec["kld_top_k"]),
        }
    return out


def measure_speed(rt, prompt: list[int], spec: dict) -> dict:
    """Median of `speed_repeats` runs after one warm-up: prefill of the prompt, then decode steps."""
    n_new = int(spec["decode_tokens"])
    rt.generate(prompt, min(n_new, 16))  # warm-up
    pre, dec = [], []
    for r in range(int(spec["speed_repeats"])):
        g = rt.generate(prompt, n_new)
        pre.append(len(prompt) / g.prefill_s)
        dec.append(g.n_decode / g.decode_s)
        progress(f"speed run {r + 1}/{spec['speed_repeats']}")
    return {
        "prefill_tokens": len(prompt),
        "decode_tokens": n_new,
        "prefill_tok_s_runs": pre,
        "decode_tok_s_runs": dec,
        "prefill_tok_s": statistics.median(pre),
        "decode_tok_s": statistics.median(dec),
    }


def run(spec: dict) -> dict:
    threads = int(spec["threads"])
    rt = make_runtime(spec["runtime"])
    t0 = time.perf_counter()
    rt.load(Path(spec["artifact"]), spec["format"], threads, int(spec["n_ctx"]))
    result: dict = {"load_s": time.perf_counter() - t0, "threads": threads}
    win = Windows.load(Path(spec["windows"]))
    probe = spec.get("tokenizer_probe")
    if probe:
        own = rt.tokenize(probe["text"])
        if own is not None:
            ref = probe["ids"]
            same = own == ref
            first_diff = None if same else next(
                (i for i, (a, b) in enumerate(zip(own, ref)) if a != b), min(len(own), len(ref)))
            result["tokenizer_check"] = {"identical": same, "first_difference": first_diff,
                                         "n_runtime": len(own), "n_source": len(ref)}
    progress("scoring windows")
    result.update(score_windows(rt, win, spec))
    progress("sanity generation")
    g = rt.generate(spec["sanity_prompt_ids"], int(spec.get("sanity_new_tokens", 8)))
    result["sanity_tokens"] = g.tokens
    if spec.get("speed", True):
        prompt = [int(t) for t in win.ids.reshape(-1)[: int(spec["prefill_tokens"])]]
        result["speed"] = measure_speed(rt, prompt, spec)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["versions"] = rt.versions()
    result["compute_dtype"] = rt.compute_dtype()
    result["notes"] = rt.notes
    rt.close()
    return result


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[1]), Path(argv[2])
    spec = json.loads(spec_path.read_text())
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    result = run(spec)
    result["ok"] = True
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
