"""Small results.json documents with known per-window and per-document values, for the gate's tests."""
from __future__ import annotations

import numpy as np

N_WINDOWS, N_TOKENS, N_DOCS = 40, 64, 300
N_PROMPTS, N_NEW = 64, 32


def generations(rng, base: list, loops: float = 0.0, drift: float = 0.0) -> dict:
    """Greedy continuations: fp16's (base), with a share `loops` of them replaced by a loop and a share
    `drift` parting from fp16's halfway."""
    out = []
    for toks in base:
        t = list(toks)
        u = rng.random()
        if u < loops:
            t = ([7, 8, 9] * N_NEW)[:N_NEW]
        elif u < loops + drift:
            t = t[: N_NEW // 2] + [int(x) for x in rng.integers(1000, 2000, N_NEW - N_NEW // 2)]
        out.append(t)
    return {"tokens": out, "ended": [False] * len(out), "blank": [False] * len(out)}


def cell(variant, runtime, nll, kld_tokens=None, top1=None, decode=(100.0, [95.0, 100.0, 105.0]), status="ok"):
    c = {"variant": variant, "runtime": runtime, "status": status, "role": "measured", "error": None,
         "window_nll": [float(x) for x in nll], "speed": {"decode_tok_s": decode[0], "decode_tok_s_runs": decode[1]}}
    if kld_tokens is not None:
        c["kld_per_token"] = kld_tokens.tolist()
        c["kld_per_window"] = kld_tokens.mean(axis=1).tolist()
        c["top1_per_window"] = top1.tolist()
    return c


def task_cell(variant, runtime, acc):
    return {"variant": variant, "runtime": runtime, "status": "ok", "error": None,
            "scores": {"piqa": {"metrics": {"acc": {"value": float(np.mean(acc)), "stderr": 0.02}}, "n": len(acc),
                                "per_doc": {"doc_id": list(range(len(acc))), "acc": [float(a) for a in acc]}}}}


def make_results(variants: dict, seed: int = 0, windows_sha: str = "w" * 64) -> dict:
    """variants: name -> dict(ppl_shift=mean NLL shift, kld=mean token KLD, flips=share of flipped docs,
    size=bytes, status="ok"|"failed", broken=bool, runtime="llama.cpp")."""
    rng = np.random.default_rng(seed)
    base_nll = 3.0 + 0.3 * rng.standard_normal(N_WINDOWS)
    base_acc = (rng.random(N_DOCS) < 0.65).astype(float)
    cells = [cell("fp16", "transformers", base_nll)]
    grng = np.random.default_rng(seed + 1000)  # its own stream: the other figures keep their draws
    base_gen = [[int(x) for x in grng.integers(100, 900, N_NEW)] for _ in range(N_PROMPTS)]
    cells[0]["generation"] = generations(grng, base_gen)
    tasks = [task_cell("fp16", "transformers", base_acc)]
    rows = [{"variant": "fp16", "runtime": "transformers", "metric": "size_bytes", "value": 2.7e8,
             "ci_low": None, "ci_high": None, "unit": "bytes"}]
    flags = []
    errors = {}
    for name, spec in variants.items():
        rt = spec.get("runtime", "llama.cpp")
        if spec.get("status") == "not built":
            errors[name] = "tool failed"
            continue
        shift = spec.get("ppl_shift", 0.0)
        noise = spec.get("noise", 0.01 if shift else 0.0)
        nll = base_nll + shift + noise * rng.standard_normal(N_WINDOWS)
        k = spec.get("kld", 0.0)
        toks = rng.exponential(k, size=(N_WINDOWS, N_TOKENS)) if k else np.zeros((N_WINDOWS, N_TOKENS))
        top1 = np.clip(1.0 - 2 * k - 0.01 * rng.random(N_WINDOWS), 0, 1) if k else np.ones(N_WINDOWS)
        c = cell(name, rt, nll, toks, top1, decode=spec.get("decode", (150.0, [140.0, 150.0, 160.0])),
                 status=spec.get("status", "ok"))
        if c["status"] == "failed":
            c["error"] = "exit code -9"
        else:
            c["generation"] = generations(grng, base_gen, spec.get("loops", 0.0), spec.get("drift", 0.0))
        cells.append(c)
        flip = rng.random(N_DOCS) < spec.get("flips", 0.0)
        tasks.append(task_cell(name, rt, np.where(flip, 1 - base_acc, base_acc)))
        rows.append({"variant": name, "runtime": rt, "metric": "size_bytes", "value": float(spec.get("size", 1e8)),
                     "ci_low": None, "ci_high": None, "unit": "bytes"})
        if spec.get("broken"):
            flags.append({"level": "broken", "variant": name, "runtime": rt, "message": "BROKEN: PPL 9x fp16's"})
    from harness.schema import SCHEMA_VERSION

    return {"schema_version": SCHEMA_VERSION, "tool": "quantcompare", "created_at": f"2026-12-01T00:00:{seed:02d}Z",
            "run": {"reference": {"variant": "fp16", "runtime": "transformers"}},
            "source": {"name": "fixture"}, "environment": {"git_commit": "0" * 40},
            "windows": {"windows_sha256": windows_sha, "tokenizer_sha256": "t" * 64, "n_windows": N_WINDOWS},
            "rows": rows, "cells": cells, "task_cells": tasks, "flags": flags, "variant_errors": errors,
            "generation": {"n_new": N_NEW},
            "manifests": {}, "notes": []}
