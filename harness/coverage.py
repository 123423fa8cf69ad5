"""Do the intervals hold their 95%? An empirical check of harness/metrics.py's intervals.

With every window of the evaluation text scored once for fp16 and for a quantized variant (a run with
`--windows 0`), the all-windows PPL and paired ΔPPL are the truth a 48-window run estimates. The study
draws subsets of windows exactly as the harness chooses them (evaluators/windows.py: choose_windows with
seeds 0, 1, 2, ...), computes each subset's 95% intervals with the harness's own estimator, and counts
how often they contain the truth. For contrast it does the same with windows resampled one by one
(ignoring articles).

    python -m harness.coverage runs/coverage-all/results.json --variant gguf-q4_k_m×llama.cpp [--draws 1000]
    python -m harness.coverage --data benchmarks/coverage-smollm2/windows.json   (the stored per-window data)
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
    for method, by_cluster in (("by article (the harness)", True), ("window by window (for contrast)", False)):
        hits = {"ppl": 0, "ppl_increase_pct": 0}
        widths = {"ppl": [], "ppl_increase_pct": []}
        for d in range(draws):
            idx = choose_windows(len(ref), n, "spread", seed=d)
            r, v = _cell("fp16", ref[idx]), _cell("variant", var[idx])
            cl = clusters[idx] if by_cluster else None
            for q, cell, against in ((metrics.PPL, r, None), (metrics.PPL_INCREASE, v, r)):
                e = metrics.estimate(q, cell, against, cl, boot)
                hits[q.metric] += int(e.ci_low <= truth[q.metric] <= e.ci_high)
                widths[q.metric].append(e.ci_high - e.ci_low)
        out["methods"][method] = {m: {"coverage": hits[m] / draws, "mean_width": float(np.mean(widths[m]))}
                                  for m in hits}
    out["seconds"] = round(time.time() - t0, 1)
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
    print(f"truth (all {res['windows_in_text']} windows, {res['clusters_in_text']} {res['cluster_kind']}s): PPL "
          f"{res['truth']['ppl']:.4f}, ΔPPL {res['truth']['ppl_increase_pct']:+.3f}%; {res['seconds']} s")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
