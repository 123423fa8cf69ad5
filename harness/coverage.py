"""Do the intervals hold their 95%? An empirical check of harness/metrics.py's intervals, quantity by quantity.

With every window of the evaluation text scored once for fp16 and for a quantized variant (a run with
`--windows 0`), and every document of a task (`--limit 0`), the all-windows and all-documents values are the
truth a default run estimates. The study draws subsets exactly as the harness chooses them (windows:
evaluators/windows.py's choose_windows with seeds 0, 1, 2, ...; documents: seeded random subsets of the
default --limit), computes each subset's interval with the harness's own estimator (metrics.estimate,
task_delta, flip_rate) and counts how often it contains the truth. Each truth is the same quantity's value on
all units (metrics.point_value), never a second formula.

    python -m harness.coverage runs/coverage-all/results.json --variant gguf-q4_k_m×llama.cpp [--draws 1000]
    python -m harness.coverage --data measurements/coverage-smollm2/windows.json   (the stored data)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from core.settings import TaskSettings
from evaluators.stats import Bootstrap
from evaluators.windows import choose_windows
from harness import metrics
from harness.evidence import CellEvidence

HARNESS = "spread windows, resampled by article (the harness)"
# the window quantities a default-policy rule (or the report's headline) reads, by their metric names
WINDOW_METRICS = ("ppl", "ppl_increase_pct", "kld_mean", "kld_p99", "top1_agreement", "delta_p_rms")
TASK_METRICS = ("acc_delta_vs_fp16", "flip_rate")
TARGET, TOLERANCE = 0.95, 0.03  # a validated interval covers 95 ± 3% of draws


def _round(xs, digits: int = 5) -> list:
    return [float(f"{x:.{digits}g}") for x in np.asarray(xs, dtype=np.float64).reshape(-1)]


def window_data(results: dict, variant: str, runtime: str) -> dict:
    """Per-window (and per-token) data of fp16 × transformers and one variant, per-document task outcomes."""
    cells = {(c["variant"], c["runtime"]): c for c in results["cells"]}
    ref, var = cells[metrics.REFERENCE], cells[(variant, runtime)]
    w = results["windows"]
    if w["n_windows"] != w["windows_available"]:
        raise SystemExit(f"the run scored {w['n_windows']} of {w['windows_available']} windows; the study needs all "
                         "(compare --windows 0)")
    data = {"model": results["source"]["name"], "text": w["text_file"], "n_ctx": w["n_ctx"],
            "variant": f"{variant} × {runtime}", "reference": " × ".join(metrics.REFERENCE),
            "positions": w["positions"], "clusters": w["clusters"], "cluster_kind": w["cluster_kind"],
            "kld_method": var.get("kld_method"),
            "ref_window_nll": ref["window_nll"], "variant_window_nll": var["window_nll"]}
    if var.get("kld_per_token"):
        data.update({"variant_kld_per_token": [_round(k, 4) for k in var["kld_per_token"]],
                     "variant_top1_per_window": var["top1_per_window"],
                     "ref_nll_per_token": [_round(x) for x in ref["nll_per_token"]],
                     "variant_nll_per_token": [_round(x) for x in var["nll_per_token"]]})
    tasks = {(t["variant"], t["runtime"]): t for t in results.get("task_cells", []) if t.get("scores")}
    rt, vt = tasks.get(metrics.REFERENCE), tasks.get((variant, runtime))
    if rt and vt:
        data["tasks"] = {}
        for task, d in vt["scores"].items():
            ref_doc, var_doc = rt["scores"][task]["per_doc"], d["per_doc"]
            metric = "acc" if "acc" in var_doc else next(m for m in var_doc if m not in ("doc_id", "loglik"))
            data["tasks"][f"{task}:{metric}"] = {"doc_id": var_doc["doc_id"], "ref": ref_doc[metric],
                                                 "variant": var_doc[metric], "limit": TaskSettings().limit}
    return data


def profile_counts() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Windows per run and documents per task of the profiles and the plain default: the settings a record must
    cover for the gate to call a run's interval validated."""
    from core.profiles import PROFILES
    from core.settings import EvalSettings

    windows = sorted({EvalSettings().windows, *(p["eval"]["windows"] for p in PROFILES.values())})
    limits = sorted({TaskSettings().limit, *(p["tasks"]["limit"] for p in PROFILES.values())})
    return tuple(windows), tuple(limits)


def study_all(data: dict, windows: tuple[int, ...], limits: tuple[int, ...], draws: int = 1000,
              boot: Bootstrap = metrics.BOOTSTRAP) -> dict:
    """The study at every count a run may use: window quantities per windows-per-run, task quantities per
    documents-per-task."""
    t0 = time.time()
    by_windows = {str(n): study({**data, "tasks": {}}, n, draws, boot, one_by_one=False) for n in windows}
    first = next(iter(by_windows.values()))
    tasks = {name.split(":")[0]: {str(lim): task_study(d, name, lim, draws, boot) for lim in limits}
             for name, d in (data.get("tasks") or {}).items()}
    return {"draws": draws, "cluster_kind": data["cluster_kind"], "kld_method": data.get("kld_method"),
            "windows_in_text": first["windows_in_text"], "bootstrap": first["bootstrap"], "by_windows": by_windows,
            "tasks": tasks, "seconds": round(time.time() - t0, 1)}


def _cells(data: dict, idx: np.ndarray | None = None) -> tuple[CellEvidence, CellEvidence]:
    """(variant, fp16) evidence on the windows idx (all windows when None)."""
    idx = slice(None) if idx is None else idx
    ref, var = CellEvidence("fp16", "transformers", "ok"), CellEvidence("variant", "", "ok")
    ref.window_nll = np.asarray(data["ref_window_nll"], dtype=np.float64)[idx]
    var.window_nll = np.asarray(data["variant_window_nll"], dtype=np.float64)[idx]
    if "variant_kld_per_token" in data:
        var.kld_tokens = np.asarray(data["variant_kld_per_token"], dtype=np.float64)[idx]
        var.top1_window = np.asarray(data["variant_top1_per_window"], dtype=np.float64)[idx]
        ref.nll_tokens = np.asarray(data["ref_nll_per_token"], dtype=np.float64)[idx]
        var.nll_tokens = np.asarray(data["variant_nll_per_token"], dtype=np.float64)[idx]
    return var, ref


def _task_cells(d: dict, name: str, idx: np.ndarray | None = None) -> tuple[CellEvidence, CellEvidence]:
    idx = np.arange(len(d["doc_id"])) if idx is None else idx
    task, metric = name.split(":")
    out = []
    for side in ("variant", "ref"):
        c = CellEvidence(side, "", "ok")
        c.tasks = {task: {"doc_id": [d["doc_id"][i] for i in idx], metric: [d[side][i] for i in idx]}}
        out.append(c)
    return out[0], out[1]


def _coverage(hits: list[bool], widths: list[float]) -> dict:
    cov = float(np.mean(hits))
    return {"coverage": cov, "mean_width": float(np.mean(widths)), "draws": len(hits),
            "validated": abs(cov - TARGET) <= TOLERANCE}


def study(data: dict, n: int = 48, draws: int = 1000, boot: Bootstrap = metrics.BOOTSTRAP,
          one_by_one: bool = True) -> dict:
    """Coverage of every quantity the data allows, under the harness's design (and, for contrast, with windows
    resampled one by one)."""
    var_all, ref_all = _cells(data)
    clusters = np.asarray(data["clusters"])
    quantities = [metrics.BY_METRIC[m] for m in WINDOW_METRICS]
    truth = {}
    for q in quantities:
        try:
            truth[q.metric] = metrics.point_value(q, *q.data(var_all if q.metric != "ppl" else ref_all, ref_all))
        except metrics.NotMeasured:
            continue
    out: dict = {"n_windows_per_run": n, "windows_in_text": len(ref_all.window_nll),
                 "clusters_in_text": int(len(set(clusters))), "cluster_kind": data["cluster_kind"], "draws": draws,
                 "bootstrap": {"resamples": boot.resamples, "seed": boot.seed, "confidence": boot.level},
                 "kld_method": data.get("kld_method"), "truth": truth, "methods": {}, "tasks": {}}
    t0 = time.time()
    designs = {HARNESS: True, "spread windows, resampled one by one": False} if one_by_one else {HARNESS: True}
    qs = [q for q in quantities if q.metric in truth]
    for method, by_article in designs.items():
        hits: dict = {q.metric: [] for q in qs}
        widths: dict = {q.metric: [] for q in qs}
        for d in range(draws):
            idx = choose_windows(len(clusters), n, "spread", d)
            var, ref = _cells(data, idx)
            cl = clusters[idx] if by_article else None
            ests = metrics.estimate_all(var, ref, cl, boot, quantities=tuple(q for q in qs if q.metric != "ppl"))
            ests["ppl"] = metrics.estimate(metrics.PPL, ref, None, cl, boot)
            for q in qs:
                e = ests[q.metric]
                hits[q.metric].append(e.ci_low <= truth[q.metric] <= e.ci_high)
                widths[q.metric].append(e.ci_high - e.ci_low)
        out["methods"][method] = {m: _coverage(hits[m], widths[m]) for m in hits}
    for name, d in (data.get("tasks") or {}).items():
        out["tasks"][name] = task_study(d, name, d.get("limit", 200), draws, boot)
    out["seconds"] = round(time.time() - t0, 1)
    return out


def task_study(d: dict, name: str, limit: int, draws: int, boot: Bootstrap) -> dict:
    """Coverage of the paired accuracy change and the flip rate over subsets of `limit` documents."""
    task, metric = name.split(":")
    var_all, ref_all = _task_cells(d, name)
    truth = {"acc_delta_vs_fp16": metrics.task_delta(var_all, ref_all, task, metric, Bootstrap(resamples=100)).value,
             "flip_rate": metrics.flip_rate(var_all, ref_all, task, metric, Bootstrap(resamples=100)).value}
    hits: dict = {m: [] for m in TASK_METRICS}
    widths: dict = {m: [] for m in TASK_METRICS}
    n_docs = len(d["doc_id"])
    for s in range(draws):
        idx = np.sort(np.random.default_rng(s).choice(n_docs, size=min(limit, n_docs), replace=False))
        var, ref = _task_cells(d, name, idx)
        for m, e in (("acc_delta_vs_fp16", metrics.task_delta(var, ref, task, metric, boot)),
                     ("flip_rate", metrics.flip_rate(var, ref, task, metric, boot))):
            hits[m].append(e.ci_low <= truth[m] <= e.ci_high)
            widths[m].append(e.ci_high - e.ci_low)
    return {"documents_in_task": n_docs, "documents_per_run": min(limit, n_docs), "truth": truth,
            **{m: _coverage(hits[m], widths[m]) for m in TASK_METRICS}}


def record_from_study(res: dict, source: str) -> dict:
    """The validated quantities of a study_all result (the harness design only), by the settings they hold at: the
    gate's record (harness/gate/coverage_record.py)."""
    if "by_windows" not in res:  # a study of one window count (before the studies at every profile's counts)
        res = {**res, "by_windows": {str(res["n_windows_per_run"]): res},
               "tasks": {name.split(":")[0]: {str(t["documents_per_run"]): t}
                         for name, t in (res.get("tasks") or {}).items()}}
    windows = {n: {m: round(c["coverage"], 4) for m, c in s["methods"][HARNESS].items() if c["validated"]}
               for n, s in res["by_windows"].items()}
    tasks = {name: {lim: {m: round(t[m]["coverage"], 4) for m in TASK_METRICS if t[m]["validated"]}
                    for lim, t in by_limit.items()} for name, by_limit in (res.get("tasks") or {}).items()}
    return {"source": source, "draws": res["draws"], "resampled_by": res["cluster_kind"],
            "kld_method": res.get("kld_method"), "windows": {n: w for n, w in windows.items() if w},
            "tasks": {k: {lim: f for lim, f in v.items() if f} for k, v in tasks.items() if any(v.values())}}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.coverage", description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="?", type=Path, help="results.json of a run over all windows (--windows 0)")
    p.add_argument("--variant", default="gguf-q4_k_m×llama.cpp", help="the variant × runtime to pair with fp16")
    p.add_argument("--data", type=Path, help="stored per-window data (instead of a results.json)")
    p.add_argument("--save-data", type=Path, help="write the per-window data taken from the results here")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--windows", default=None, help="windows per run, comma-separated (default: every profile's)")
    p.add_argument("--limits", default=None, help="documents per task, comma-separated (default: every profile's)")
    p.add_argument("--out", type=Path, help="write the study's figures here (JSON)")
    p.add_argument("--record", type=Path, help="also write the validated quantities here (the gate's "
                   "harness/gate/interval-coverage.json), naming --out as their source")
    a = p.parse_args(argv)
    if a.data:
        data = json.loads(a.data.read_text())
    else:
        variant, runtime = a.variant.split("×")
        data = window_data(json.loads(a.results.read_text()), variant.strip(), runtime.strip())
        if a.save_data:
            a.save_data.write_text(json.dumps(data))
    windows, limits = profile_counts()
    windows = tuple(int(x) for x in a.windows.split(",")) if a.windows else windows
    limits = tuple(int(x) for x in a.limits.split(",")) if a.limits else limits
    res = {"data": {k: data[k] for k in ("model", "text", "n_ctx", "variant", "reference")},
           **study_all(data, windows, limits, a.draws)}
    for n, s in res["by_windows"].items():
        for method, d in s["methods"].items():
            print(f"{method} ({res['draws']} draws of {n} windows):")
            for m, c in d.items():
                print(f"  {m}: {100 * c['coverage']:.1f}% (mean width {c['mean_width']:.4g}; truth {s['truth'][m]:.5g})")
    for name, by_limit in res["tasks"].items():
        for lim, t in by_limit.items():
            print(f"{name} ({res['draws']} draws of {t['documents_per_run']} of {t['documents_in_task']} documents): "
                  + "; ".join(f"{m} {100 * t[m]['coverage']:.1f}% (truth {t['truth'][m]:.4g})" for m in TASK_METRICS))
    print(f"{res['seconds']} s")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    if a.record:
        a.record.write_text(json.dumps(record_from_study(res, str(a.out or a.data or a.results)), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
