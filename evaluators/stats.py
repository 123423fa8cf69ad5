"""Confidence intervals over windows (plain and paired); numpy only."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Two-sided 95% Student-t quantiles for small samples; normal beyond.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t95(dof: int) -> float:
    if dof <= 0:
        return float("nan")
    keys = sorted(_T95)
    for k in keys:
        if dof <= k:
            return _T95[k]
    return 1.960


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int


def mean_ci(values) -> Estimate:
    """Mean with a 95% t interval over independent samples (here: windows)."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    m = float(x.mean()) if n else float("nan")
    if n < 2:
        return Estimate(m, float("nan"), float("nan"), n)
    half = t95(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Estimate(m, m - half, m + half, n)


def ppl_ci(window_mean_nll) -> Estimate:
    """Perplexity exp(mean NLL) with the window-level CI of the mean NLL mapped through exp.

    All windows score the same number of tokens, so the mean of window means is the token mean."""
    e = mean_ci(window_mean_nll)
    return Estimate(math.exp(e.value), math.exp(e.ci_low), math.exp(e.ci_high), e.n)


def paired_ppl_ratio_ci(variant_nll, reference_nll) -> Estimate:
    """PPL(variant)/PPL(reference) with a paired CI: both scored the same windows."""
    d = np.asarray(variant_nll, dtype=np.float64) - np.asarray(reference_nll, dtype=np.float64)
    e = mean_ci(d)
    return Estimate(math.exp(e.value), math.exp(e.ci_low), math.exp(e.ci_high), e.n)


@dataclass(frozen=True)
class Bootstrap:
    """Percentile bootstrap settings; fixed and recorded so that a verdict can be reproduced."""

    seed: int = 0
    resamples: int = 4000
    level: float = 0.95


_MAX_ELEMENTS = 1 << 23  # resampled values held at once (memory bound: chunks of resamples)


def bootstrap_ci(statistic, groups, boot: Bootstrap = Bootstrap()) -> Estimate:
    """Value and percentile interval of `statistic` under resampling.

    groups: a list of groups, each a list of arrays sharing their first axis (windows or documents).
    The arrays of one group are resampled with the same indices, so their pairing is kept (a paired
    comparison is one group); different groups are resampled independently (an unpaired comparison).
    statistic(*arrays) is vectorized: every array arrives with a leading resample axis, [B, n, ...],
    and it returns B values. The value reported is the statistic of the data as observed."""
    groups = [[np.asarray(a) for a in g] for g in groups]
    flat = [a for g in groups for a in g]
    value = float(np.asarray(statistic(*[a[None] for a in flat]))[0])
    rng = np.random.default_rng(boot.seed)
    per_resample = sum(a.size for a in flat)
    step = max(1, _MAX_ELEMENTS // max(1, per_resample))
    out = []
    for start in range(0, boot.resamples, step):
        b = min(step, boot.resamples - start)
        arrays = []
        for g in groups:
            idx = rng.integers(0, len(g[0]), size=(b, len(g[0])))
            arrays += [a[idx] for a in g]
        out.append(np.asarray(statistic(*arrays), dtype=np.float64))
    stats = np.concatenate(out)
    alpha = 100 * (1 - boot.level) / 2
    lo, hi = np.percentile(stats, [alpha, 100 - alpha])
    return Estimate(value, float(lo), float(hi), min(len(g[0]) for g in groups))


def percentile_of_rows(rows, q: float):
    """q-th percentile of all values of the windows in each resample: rows [B, n, T] -> [B]."""
    b = rows.shape[0]
    return np.percentile(rows.reshape(b, -1), q, axis=1)
