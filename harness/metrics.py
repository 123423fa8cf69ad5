"""Every quality quantity the harness reports, defined once: the per-unit data it is computed from, its
estimate, its interval, its unit and which direction is worse. results.json's rows, the report, the
terminal table and the gate all take their numbers from `estimate()`, so one quantity never shows two
intervals.

Intervals are percentile bootstraps over the units the variants share (paired wherever a reference is
involved): windows, resampled by the article of the evaluation text they come from (windows of one
article are not independent), or documents of an lm-eval task. Per-token statistics (KLD percentiles,
Δp, correlations) resample whole windows too, never single tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from evaluators.stats import (Bootstrap, Estimate, Sample, bootstrap_ci, bootstrap_many, wcorr, wmean,
                              wpercentiles)
from harness.evidence import CellEvidence, usable_reference

from core.names import REFERENCE  # noqa: E402  (what every variant is compared with)
BOOTSTRAP = Bootstrap()  # the report's and the default policy's (seed 0, 4000 resamples, 95%)


class NotMeasured(Exception):
    """A quantity needs data the run did not measure; a gate rule fails closed with this reason."""


@dataclass(frozen=True)
class Quantity:
    metric: str  # its row name in results.json
    label: str
    unit: str
    over: str  # "windows" or "documents"
    data: Callable  # (cell, reference) -> tuple of per-unit arrays
    summary: Callable  # (weights [B, n], arrays) -> [B]
    higher_is_worse: bool = True
    paired: bool = False  # computed against the reference on the same units
    percentile: float | None = None  # a percentile of all per-token values (summary is _pct(percentile))
    # data returns one tuple of arrays per stratum, each resampled on its own (never empty), and summary takes
    # ([weights per stratum], [arrays per stratum]): a difference between two groups of units
    strata: bool = False
    # descriptive only: a figure with no interval (a bootstrap's upper bound never passes the observed maximum, and
    # p99.9 rests on a few tokens); reported as a value, never a rule (harness/gate/policy.DESCRIPTIVE_ONLY)
    descriptive: bool = False


def _need(x, what: str, cell: CellEvidence):
    if x is None:
        raise NotMeasured(f"{what} of {cell.variant} × {cell.runtime} was not measured")
    return x


def _same_units(a: np.ndarray, b: np.ndarray, cell: CellEvidence, ref: CellEvidence):
    if a.shape != b.shape:
        raise NotMeasured(f"{cell.variant} × {cell.runtime} scored {a.shape} units, {ref.variant} × {ref.runtime} {b.shape}")
    return a, b


def _nll(cell, _ref):
    return (_need(cell.window_nll, "per-window perplexity", cell),)


def _nll_diff(cell, ref):
    a, b = _same_units(_need(cell.window_nll, "per-window perplexity", cell),
                       _need(ref.window_nll, "per-window perplexity", ref), cell, ref)
    return (a - b,)


def _token_nll_pair(cell, ref):
    return _same_units(np.asarray(_need(cell.nll_tokens, "per-token NLL", cell), dtype=np.float64),
                       np.asarray(_need(ref.nll_tokens, "per-token NLL", ref), dtype=np.float64), cell, ref)


def _delta_p(cell, ref):
    a, b = _token_nll_pair(cell, ref)
    return (np.exp(-a) - np.exp(-b),)


def _kld_tokens(cell, _ref):
    return (_need(cell.kld_tokens, "per-token KL divergence", cell),)


def _kld_mean(cell, _ref):
    return (cell.kld_tokens,) if cell.kld_tokens is not None else (_need(cell.kld_window, "KL divergence", cell),)


def _top1(cell, _ref):
    return (_need(cell.top1_window, "top-1 agreement", cell),)


def _pct(q):
    return lambda w, xs: wpercentiles(xs[0], w, [q])[:, 0]


W = "windows"
PPL = Quantity("ppl", "perplexity", "", W, _nll, lambda w, xs: np.exp(wmean(xs[0], w)))
PPL_INCREASE = Quantity("ppl_increase_pct", "PPL increase vs fp16 (%)", "%", W, _nll_diff,
                        lambda w, xs: 100.0 * (np.exp(wmean(xs[0], w)) - 1.0), paired=True)
LN_PPL_RATIO = Quantity("ln_ppl_ratio", "mean ln(PPL/PPL(fp16))", "nats", W, _nll_diff,
                        lambda w, xs: wmean(xs[0], w), paired=True)
COR_LN_PPL = Quantity("cor_ln_ppl", "Cor(ln PPL, ln PPL(fp16)) over tokens", "", W, _token_nll_pair,
                      lambda w, xs: wcorr(xs[0], xs[1], w), higher_is_worse=False, paired=True)
KLD_MEAN = Quantity("kld_mean", "mean KLD vs fp16 (nats)", "nats", W, _kld_mean, lambda w, xs: wmean(xs[0], w))
KLD_MEDIAN = Quantity("kld_median", "median KLD (nats)", "nats", W, _kld_tokens, _pct(50), percentile=50)
KLD_P90 = Quantity("kld_p90", "KLD p90 (nats)", "nats", W, _kld_tokens, _pct(90), percentile=90)
KLD_P99 = Quantity("kld_p99", "KLD p99 (nats)", "nats", W, _kld_tokens, _pct(99), percentile=99)
KLD_P999 = Quantity("kld_p999", "KLD p99.9 (nats)", "nats", W, _kld_tokens, _pct(99.9), percentile=99.9,
                    descriptive=True)
KLD_MAX = Quantity("kld_max", "KLD max (nats)", "nats", W, _kld_tokens, _pct(100), percentile=100, descriptive=True)
TOP1 = Quantity("top1_agreement", "same top token as fp16", "fraction", W, _top1, lambda w, xs: wmean(xs[0], w),
                higher_is_worse=False)
DELTA_P_MEAN = Quantity("delta_p_mean", "mean Δp (p of the next token minus fp16's)", "fraction", W, _delta_p,
                        lambda w, xs: wmean(xs[0], w), higher_is_worse=False, paired=True)
DELTA_P_RMS = Quantity("delta_p_rms", "RMS Δp", "fraction", W, _delta_p,
                       lambda w, xs: np.sqrt(wmean(xs[0] ** 2, w)), paired=True)
# Δp < 0: the variant gives the right next token less probability than fp16 did. A higher percentile of Δp is
# never worse (the low ones are the damage tail), so every Δp percentile has higher_is_worse=False.
DELTA_P_PCTS = {q: Quantity(f"delta_p_p{q}", f"Δp p{q}", "fraction", W, _delta_p, _pct(q), higher_is_worse=False,
                            paired=True, percentile=q) for q in (1, 5, 10, 50, 90, 95, 99)}

# the rows of a cell, in the order the report lists them (ppl first; the paired ones need a reference)
WINDOW_QUANTITIES = (PPL, PPL_INCREASE, LN_PPL_RATIO, COR_LN_PPL, KLD_MEAN, KLD_MEDIAN, KLD_P90, KLD_P99, KLD_P999,
                     KLD_MAX, TOP1, DELTA_P_MEAN, DELTA_P_RMS, *DELTA_P_PCTS.values())
BY_METRIC = {q.metric: q for q in WINDOW_QUANTITIES}


def point_value(q: Quantity, *arrays) -> float:
    """The quantity's value on per-unit arrays as observed (every unit weight 1), without an interval: what
    estimate() reports as its value. The BROKEN check and `make bench` read PPL this way."""
    xs = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    return float(np.asarray(q.summary(np.ones((1, len(xs[0]))), xs)).reshape(-1)[0])


def ppl(window_nll) -> float:
    """Perplexity from per-window mean NLLs: PPL's one definition (exp of the mean over windows)."""
    return point_value(PPL, window_nll)


def kld_curve(cell: CellEvidence) -> list[float]:
    """Percentiles 0..100 of the cell's per-token KLD: KLD_MEDIAN, KLD_P90, KLD_P99 and KLD_MAX are points of it."""
    x = _kld_tokens(cell, None)[0]
    return [float(v) for v in wpercentiles(x, np.ones((1, len(x))), list(range(101)))[0]]


def estimate(q: Quantity, cell: CellEvidence, ref: CellEvidence | None, clusters=None,
             boot: Bootstrap = BOOTSTRAP) -> Estimate:
    """The quantity for `cell` (paired with `ref` on the same units where it compares), and its interval."""
    if q.paired and ref is None:
        raise NotMeasured(f"{q.label} needs the fp16 reference")
    arrays = q.data(cell, ref)
    if q.strata:
        return bootstrap_ci(q.summary, [Sample(a) for a in arrays], boot)
    cl = _clusters_for(q, clusters, len(arrays[0]))
    return bootstrap_ci(lambda ws, xs: q.summary(ws[0], xs[0]), [Sample(arrays, cl)], boot)


def estimate_all(cell: CellEvidence, ref: CellEvidence | None, clusters=None, boot: Bootstrap = BOOTSTRAP,
                 quantities=WINDOW_QUANTITIES) -> dict[str, Estimate]:
    """Every window quantity the cell's data allows ({} entries for the rest). Percentiles of one per-token
    array come from one pass over the same resamples, which is what estimate() would draw for each."""
    out: dict[str, Estimate] = {}
    groups: dict = {}
    for q in quantities:
        if q.paired and (ref is None or ref is cell):
            continue
        if q.percentile is not None:
            groups.setdefault(q.data, []).append(q)
            continue
        try:
            out[q.metric] = estimate(q, cell, ref, clusters, boot)
        except NotMeasured:
            pass
    for data, qs in groups.items():
        try:
            arrays = data(cell, ref)
        except NotMeasured:
            continue
        cl = _clusters_for(qs[0], clusters, len(arrays[0]))
        pcts = [q.percentile for q in qs]
        ests = bootstrap_many(lambda ws, xs: wpercentiles(xs[0][0], ws[0], pcts), [Sample(arrays, cl)], boot)
        out.update({q.metric: e for q, e in zip(qs, ests)})
    return {q.metric: out[q.metric] for q in quantities if q.metric in out}


def change(q: Quantity, cur: tuple, base: tuple, clusters=(None, None), paired: bool = True,
           boot: Bootstrap = BOOTSTRAP) -> Estimate:
    """How much worse the quantity got from a baseline run to this one (positive: worse). cur and base are
    (cell, reference) pairs of each run; paired when both scored the same units (one resample for both)."""
    sign = 1.0 if q.higher_is_worse else -1.0
    a, b = q.data(*cur), q.data(*base)
    ca, cb = (_clusters_for(q, c, len(x[0])) for c, x in zip(clusters, (a, b)))
    if paired:
        if len(a[0]) != len(b[0]):
            raise NotMeasured(f"{len(a[0])} {q.over} here, {len(b[0])} in the baseline")
        stat = lambda ws, xs: sign * (q.summary(ws[0], xs[0][:len(a)]) - q.summary(ws[0], xs[0][len(a):]))
        return bootstrap_ci(stat, [Sample((*a, *b), ca)], boot)
    stat = lambda ws, xs: sign * (q.summary(ws[0], xs[0]) - q.summary(ws[1], xs[1]))
    return bootstrap_ci(stat, [Sample(a, ca), Sample(b, cb)], boot)


def _clusters_for(q: Quantity, clusters, n: int):
    if q.over != W or clusters is None:
        return None
    clusters = np.asarray(clusters)
    return clusters if len(clusters) == n else None


# -- downstream tasks: per (task, metric), over documents --------------------------------------------------

def task_reference(cells: dict, cell: CellEvidence, ref_key: tuple[str, str] = REFERENCE) -> CellEvidence:
    """fp16 on the cell's own runtime where it ran there soundly, else fp16 × transformers; never a failed or
    BROKEN cell."""
    same = cells.get((ref_key[0], cell.runtime))
    if cell.variant != ref_key[0] and same is not None and usable_reference(same, tasks=True):
        return same
    return reference_cell(cells, ref_key, tasks=True)


def reference_cell(cells: dict, ref_key: tuple[str, str] = REFERENCE, tasks: bool = False) -> CellEvidence:
    """The fp16 reference cell, or NotMeasured saying why it cannot be one (missing, failed, BROKEN)."""
    ref = cells.get(ref_key)
    if ref is None or not usable_reference(ref, tasks=tasks):
        why = "was not measured" if ref is None else f"cannot be a reference: {ref.problem or ref.task_problem or ref.status}"
        raise NotMeasured(f"the fp16 reference {ref_key[0]} × {ref_key[1]} {why}")
    return ref


def _doc_values(cell: CellEvidence, task: str, metric: str) -> tuple[list, np.ndarray, bool]:
    """(doc ids, per-document values, is-a-log-likelihood) of one task metric."""
    d = cell.tasks.get(task)
    key = "loglik" if metric == "perplexity" else metric
    if not d or key not in d:
        raise NotMeasured(f"per-document {task}:{metric} of {cell.variant} × {cell.runtime} was not measured")
    return d["doc_id"], np.asarray(d[key], dtype=np.float64), key == "loglik"


def _task_summary(is_ll: bool):
    # lm-eval's aggregations: accuracy is the mean outcome, perplexity exp(−mean log-likelihood)
    return (lambda w, x: np.exp(-wmean(x, w))) if is_ll else (lambda w, x: wmean(x, w))


def task_value(cell: CellEvidence, task: str, metric: str, boot: Bootstrap = BOOTSTRAP) -> Estimate:
    _, x, is_ll = _doc_values(cell, task, metric)
    f = _task_summary(is_ll)
    return bootstrap_ci(lambda ws, xs: f(ws[0], xs[0][0]), [Sample((x,))], boot)


def task_delta(cell: CellEvidence, ref: CellEvidence, task: str, metric: str, boot: Bootstrap = BOOTSTRAP) -> Estimate:
    """value(cell) − value(fp16), paired by document. The gate's accuracy drop is −100 × this estimate."""
    ids, a, is_ll = _doc_values(cell, task, metric)
    ref_ids, b, _ = _doc_values(ref, task, metric)
    if ids != ref_ids:
        raise NotMeasured(f"{task}: documents differ from the fp16 reference's")
    f = _task_summary(is_ll)
    return bootstrap_ci(lambda ws, xs: f(ws[0], xs[0][0]) - f(ws[0], xs[0][1]), [Sample((a, b))], boot)


def flip_rate(cell: CellEvidence, ref: CellEvidence, task: str, metric: str, boot: Bootstrap = BOOTSTRAP) -> Estimate:
    """Share of documents whose right/wrong outcome differs from fp16's (what equal accuracies can hide)."""
    _, flips = _drop_or_flips("flips", cell, ref, task, metric)
    return bootstrap_ci(lambda ws, xs: wmean(xs[0][0], ws[0]), [Sample((flips,))], boot)


def scaled(e: Estimate, factor: float) -> Estimate:
    """The same estimate in other units (×100 for points, −1 to turn a change into a drop)."""
    lo, hi = sorted((e.ci_low * factor, e.ci_high * factor))
    return Estimate(e.value * factor + 0.0, lo + 0.0, hi + 0.0, e.n)  # + 0.0: no "-0" in a verdict


def outcome_metrics(cell: CellEvidence, selector: str) -> list[tuple[str, str]]:
    """(task, metric) pairs with right/wrong outcomes per document that a policy key selects: "*", "piqa" or
    "piqa:acc_norm" (accuracy drops and flips are defined on outcomes, not on log-likelihoods)."""
    if cell.task_problem:
        raise NotMeasured(f"downstream tasks of {cell.variant} × {cell.runtime}: {cell.task_problem}")
    keys = [(task, m) for task, d in sorted(cell.tasks.items()) for m in d if m not in ("doc_id", "loglik")
            if selector in ("*", task, f"{task}:{m}")]
    if not keys:
        raise NotMeasured(f"no per-document task outcomes for '{selector}' on {cell.variant} × {cell.runtime}")
    return keys


def _drop_or_flips(kind: str, cell: CellEvidence, ref: CellEvidence, task: str, metric: str) -> tuple[list, np.ndarray]:
    ids, a, _ = _doc_values(cell, task, metric)
    ref_ids, b, _ = _doc_values(ref, task, metric)
    if ids != ref_ids:
        raise NotMeasured(f"{task}: documents differ from the fp16 reference's")
    return ids, (100.0 * (b - a) if kind == "drop" else (a != b).astype(np.float64))


def task_change(kind: str, cur: tuple, base: tuple, task: str, metric: str, paired: bool = True,
                boot: Bootstrap = BOOTSTRAP) -> Estimate:
    """How much the accuracy drop vs fp16 (kind "drop", points) or the flip rate (kind "flips") grew from a
    baseline run to this one; cur and base are each run's (cell, fp16 reference). Paired by document."""
    ids_a, a = _drop_or_flips(kind, *cur, task, metric)
    ids_b, b = _drop_or_flips(kind, *base, task, metric)
    if paired:
        if ids_a != ids_b:
            raise NotMeasured(f"the baseline scored other {task} documents")
        return bootstrap_ci(lambda ws, xs: wmean(xs[0][0], ws[0]) - wmean(xs[0][1], ws[0]), [Sample((a, b))], boot)
    return bootstrap_ci(lambda ws, xs: wmean(xs[0][0], ws[0]) - wmean(xs[1][0], ws[1]), [Sample((a,)), Sample((b,))], boot)
