"""Do the intervals hold their 95%? An empirical check of harness/metrics.py's intervals.

With every window of the evaluation text scored once for fp16 and for a quantized variant (a run with
`--windows 0`), the all-windows PPL and paired ΔPPL are the truth a 48-window run estimates. The study
draws subsets of windows exactly as the harness chooses them (evaluators/windows.py: choose_windows with
seeds 0, 1, 2, ...), computes each subset's 95% intervals with the harness's own estimator, and counts
how often they contain the truth. For contrast it does the same with windows resampled one by one
(ignoring articles).

    python -m harness.coverage runs/coverage-all/results.json --variant gguf-q4_k_m×llama.cpp [--draws 1000]
    python -m harness.coverage --data measurements/coverage-smollm2/windows.json   (the stored per-window data)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from evaluators.stats import Bootstrap
from evaluators.windows import choose_windows
from harness import metrics
from harness.evidence import CellEvidence


HARNESS = "spread windows, resampled by article (the harness)"


def window_data(results: dict, variant: str, runtime: str) -> dict:
    """The per-window NLLs of fp16 × transformers and of one variant, with positions and clusters."""
    cells = {(c["variant"], c["runtime"]): c for c in results["cells"]}
    ref, var = cells[metrics.REFERENCE], cells[(variant, runtime)]
    w = results["windows"]
    if w["n_windows"] != w["windows_available"]:
        raise SystemExit(f"the run scored {w['n_windows']} of {w['windows_available']} windows; the study needs all "
                         "(compare --windows 0)")
    return {"model": results["source"]["name"], "text": w["text_file"], "n_ctx": w["n_ctx"],
            "variant": f"{variant} × {runtime}", "reference": " × ".join(metrics.REFERENCE),
            "positions": w["positions"], "clusters": w["clusters"], "cluster_kind": w["cluster_kind"],
            "ref_window_nll": ref["window_nll"], "variant_window_nll": var["window_nll"]}


def choose_by_article(clusters_all, n: int, per_draw: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Another design, for contrast (not the harness's): a two-stage sample: n / per_draw articles drawn with replacement, each with probability proportional to
    its number of windows, and per_draw of its windows drawn at random (windows of an article drawn again are
    new ones while it has any). Every window of the text is equally likely, so the plain mean estimates the
    all-windows value, and resampling the draws (harness/metrics.py resamples by `draw`) gives its variance,
    article effects included. Returns (window indices in text order, the draw of each)."""
    clusters_all = np.asarray(clusters_all)
    rng = np.random.default_rng(seed)
    ids, sizes = np.unique(clusters_all, return_counts=True)
    members = {c: np.flatnonzero(clusters_all == c) for c in ids}
    used: dict = {c: set() for c in ids}
    picks, draws = [], []
    for d, c in enumerate(rng.choice(ids, size=max(1, n // per_draw), p=sizes / sizes.sum())):
        fresh = [w for w in members[c] if w not in used[c]]
        pool = fresh if len(fresh) >= per_draw else list(members[c])
        chosen = rng.choice(pool, size=per_draw, replace=len(pool) < per_draw)
        used[c].update(int(w) for w in chosen)
        picks += [int(w) for w in chosen]
        draws += [d] * per_draw
    order = np.argsort(picks, kind="stable")
    return np.asarray(picks)[order], np.asarray(draws)[order]


def _cell(name: str, nll: np.ndarray) -> CellEvidence:
    c = CellEvidence(name, "", "ok")
    c.window_nll = nll
    return c


def study(data: dict, n: int = 48, draws: int = 1000, boot: Bootstrap = metrics.BOOTSTRAP) -> dict:
    ref = np.asarray(data["ref_window_nll"], dtype=np.float64)
    var = np.asarray(data["variant_window_nll"], dtype=np.float64)
    clusters = np.asarray(data["clusters"])
    truth = {"ppl": float(np.exp(ref.mean())), "ppl_increase_pct": float(100 * (np.exp((var - ref).mean()) - 1))}
    out: dict = {"n_windows_per_run": n, "windows_in_text": len(ref), "clusters_in_text": int(len(set(clusters))),
                 "cluster_kind": data["cluster_kind"], "draws": draws, "bootstrap": {"resamples": boot.resamples,
                 "seed": boot.seed, "confidence": boot.level}, "truth": truth, "methods": {}}
    t0 = time.time()
    designs = {
        HARNESS: lambda d: (choose_windows(len(ref), n, "spread", d), "article"),
        "spread windows, resampled one by one": lambda d: (choose_windows(len(ref), n, "spread", d), None),
        "articles drawn, 2 windows each, resampled by draw": lambda d: choose_by_article(clusters, n, 2, d),
    }
    for method, design in designs.items():
        hits = {"ppl": 0, "ppl_increase_pct": 0}
        widths = {"ppl": [], "ppl_increase_pct": []}
        for d in range(draws):
            idx, how = design(d)
            r, v = _cell("fp16", ref[idx]), _cell("variant", var[idx])
            cl = clusters[idx] if isinstance(how, str) else how
            for q, cell, against in ((metrics.PPL, r, None), (metrics.PPL_INCREASE, v, r)):
                e = metrics.estimate(q, cell, against, cl, boot)
                hits[q.metric] += int(e.ci_low <= truth[q.metric] <= e.ci_high)
                widths[q.metric].append(e.ci_high - e.ci_low)
        out["methods"][method] = {m: {"coverage": hits[m] / draws, "mean_width": float(np.mean(widths[m]))}
                                  for m in hits}
    out["previous_method"] = previous_method(ref, var, n, truth)
    out["seconds"] = round(time.time() - t0, 1)
    return out


T_975_47 = 2.0117  # Student's t, 97.5% quantile, 47 degrees of freedom (the previous method's n = 48)


def previous_method(ref: np.ndarray, var: np.ndarray, n: int, truth: dict) -> dict | None:
    """What the harness did before: the first n windows and a t-interval of the mean NLL (of the paired
    difference for ΔPPL). One sample, so no coverage: whether its intervals contain the truth."""
    if n != 48:
        return None
    out = {}
    for metric, x, f in (("ppl", ref[:n], np.exp), ("ppl_increase_pct", (var - ref)[:n], lambda v: 100 * (np.exp(v) - 1))):
        half = T_975_47 * x.std(ddof=1) / np.sqrt(n)
        lo, hi = float(f(x.mean() - half)), float(f(x.mean() + half))
        out[metric] = {"value": float(f(x.mean())), "ci": [lo, hi], "contains_truth": lo <= truth[metric] <= hi}
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.coverage", description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="?", type=Path, help="results.json of a run over all windows (--windows 0)")
    p.add_argument("--variant", default="gguf-q4_k_m×llama.cpp", help="the variant × runtime to pair with fp16")
    p.add_argument("--data", type=Path, help="stored per-window data (instead of a results.json)")
    p.add_argument("--save-data", type=Path, help="write the per-window data taken from the results here")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--windows", type=int, default=48)
    p.add_argument("--out", type=Path, help="write the study's figures here (JSON)")
    a = p.parse_args(argv)
    if a.data:
        data = json.loads(a.data.read_text())
    else:
        variant, runtime = a.variant.split("×")
        data = window_data(json.loads(a.results.read_text()), variant.strip(), runtime.strip())
        if a.save_data:
            a.save_data.write_text(json.dumps(data))
    res = {"data": {k: data[k] for k in ("model", "text", "n_ctx", "variant", "reference")}, **study(data, a.windows, a.draws)}
    for method, d in res["methods"].items():
        print(f"{method}: PPL {100 * d['ppl']['coverage']:.1f}% (mean width {d['ppl']['mean_width']:.3f}), "
              f"paired ΔPPL {100 * d['ppl_increase_pct']['coverage']:.1f}% (mean width "
              f"{d['ppl_increase_pct']['mean_width']:.3f} points) of {res['draws']} draws of {res['n_windows_per_run']} windows")
    prev = res.get("previous_method")
    if prev:
        print("previous method (the first 48 windows, t-interval): " + "; ".join(
            f"{m} {d['value']:.4f} [{d['ci'][0]:.4f}, {d['ci'][1]:.4f}] {'contains' if d['contains_truth'] else 'MISSES'} "
            "the all-windows value" for m, d in prev.items()))
    print(f"truth (all {res['windows_in_text']} windows, {res['clusters_in_text']} {res['cluster_kind']}s): PPL "
          f"{res['truth']['ppl']:.4f}, ΔPPL {res['truth']['ppl_increase_pct']:+.3f}%; {res['seconds']} s")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
