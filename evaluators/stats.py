"""Intervals by resampling whole clusters of units (numpy only).

Units are windows (resampled by the article they come from, so windows of one article move together) or
documents (each its own cluster). A resample is a vector of counts per unit: cluster k drawn c times gives
each of its units weight c. Statistics are written against those weights, so one vectorized call scores
thousands of resamples, and the value reported for the data as observed is the same statistic with all
weights 1: an estimate and its interval are never computed two ways."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class Bootstrap:
    """Percentile bootstrap settings; fixed and recorded so that every interval can be reproduced."""

    seed: int = 0
    resamples: int = 4000
    level: float = 0.95


@dataclass(frozen=True)
class Sample:
    """One side of a comparison: arrays sharing their first axis (the units), and each unit's cluster.
    Arrays of one Sample are resampled with the same weights (that is what pairs them); separate Samples
    are resampled independently (an unpaired comparison)."""

    arrays: tuple
    clusters: np.ndarray | None = None  # [n] cluster id per unit; None: every unit is its own

    @property
    def n(self) -> int:
        return len(self.arrays[0])

    def cluster_index(self) -> np.ndarray:
        if self.clusters is None:
            return np.arange(self.n)
        return np.unique(np.asarray(self.clusters), return_inverse=True)[1].reshape(-1)


def resample_weights(rng: np.random.Generator, cluster_index: np.ndarray, b: int) -> np.ndarray:
    """[b, n] unit weights of b cluster resamples (each draws as many clusters as there are, with replacement)."""
    k = int(cluster_index.max()) + 1
    counts = rng.multinomial(k, np.full(k, 1.0 / k), size=b)  # [b, k]
    return counts[:, cluster_index].astype(np.float64)


_MAX_ELEMENTS = 1 << 23  # resampled values held at once (memory bound: chunks of resamples)


def bootstrap_ci(statistic, samples: list[Sample], boot: Bootstrap = Bootstrap()) -> Estimate:
    """Value and percentile interval of statistic(weights, arrays) under cluster resampling.

    statistic takes a list of weight matrices [B, n_s] (one per Sample) and a list of the Samples' array
    tuples, and returns B values. The value is the statistic with all weights 1."""
    return bootstrap_many(statistic, samples, boot)[0]


def bootstrap_many(statistic, samples: list[Sample], boot: Bootstrap = Bootstrap()) -> list[Estimate]:
    """As bootstrap_ci, for a statistic returning [B, m]: m estimates from the very same resamples (the
    same seed gives the same resamples, so each equals its own bootstrap_ci)."""
    arrays = [tuple(np.asarray(a) for a in s.arrays) for s in samples]
    n = min(s.n for s in samples)
    values = np.asarray(statistic([np.ones((1, s.n)) for s in samples], arrays), dtype=np.float64).reshape(1, -1)[0]
    rng = np.random.default_rng(boot.seed)
    index = [s.cluster_index() for s in samples]
    per_resample = sum(a.size for t in arrays for a in t)
    step = max(1, _MAX_ELEMENTS // max(1, per_resample))
    out = []
    for start in range(0, boot.resamples, step):
        b = min(step, boot.resamples - start)
        ws = [resample_weights(rng, ix, b) for ix in index]
        out.append(np.asarray(statistic(ws, arrays), dtype=np.float64).reshape(b, -1))
    stats = np.concatenate(out)
    alpha = 100 * (1 - boot.level) / 2
    res = []
    for j, value in enumerate(values):
        col = stats[:, j]
        col = col[np.isfinite(col)]
        if not np.isfinite(value) or not len(col):
            res.append(Estimate(float(value), float("nan"), float("nan"), n))
            continue
        lo, hi = np.percentile(col, [alpha, 100 - alpha])
        res.append(Estimate(float(value), float(lo), float(hi), n))
    return res


# -- weighted summaries: x has units on its first axis, w is [B, n] ------------------------------------------

def wmean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean over units; a unit holding several values (a window's tokens) counts their mean."""
    x = np.asarray(x, dtype=np.float64)
    per_unit = x if x.ndim == 1 else x.reshape(len(x), -1).mean(axis=1)
    return (w @ per_unit) / w.sum(axis=1)


def wpercentiles(x: np.ndarray, w: np.ndarray, qs) -> np.ndarray:
    """Percentiles (numpy's linear rule) of all values of the resampled units: [B, len(qs)].

    With integer weights this is exactly np.percentile of the resampled multiset: the values are sorted
    once, each resample's counts are accumulated in that order, and the two values around the rank
    q/100·(N−1) are read off."""
    x = np.asarray(x, dtype=np.float64).reshape(len(w[0]), -1)
    per_unit = x.shape[1]
    order = np.argsort(x, axis=None, kind="stable")
    values = x.reshape(-1)[order]
    unit_of = order // per_unit
    out = np.empty((len(w), len(qs)))
    step = max(1, (1 << 22) // max(1, len(values)))
    m = len(values)
    for s in range(0, len(w), step):
        cum = np.cumsum(w[s:s + step][:, unit_of], axis=1)  # [b, M]
        total = cum[:, -1]
        # rows laid end to end, each shifted past the last, so one searchsorted finds every rank
        shift = np.arange(len(cum))[:, None] * (total.max() + 2)
        flat = (cum + shift).reshape(-1)
        for j, q in enumerate(qs):
            pos = q / 100.0 * (total - 1)
            lo = np.floor(pos)
            frac = pos - lo
            base = shift[:, 0]
            i_lo = np.searchsorted(flat, lo + base, side="right") - np.arange(len(cum)) * m
            i_hi = np.searchsorted(flat, lo + 1 + base, side="right") - np.arange(len(cum)) * m
            out[s:s + step, j] = values[np.minimum(i_lo, m - 1)] * (1 - frac) + values[np.minimum(i_hi, m - 1)] * frac
    return out


def wcorr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson correlation of all paired values (x, y: [n, T]) of the resampled units: [B]."""
    x = np.asarray(x, dtype=np.float64).reshape(len(w[0]), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(w[0]), -1)
    t = x.shape[1]
    sums = [w @ v for v in (x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), (x * y).sum(1))]
    n = w.sum(axis=1) * t
    sx, sy, sxx, syy, sxy = sums
    cov = sxy / n - (sx / n) * (sy / n)
    vx = sxx / n - (sx / n) ** 2
    vy = syy / n - (sy / n) ** 2
    return cov / np.sqrt(np.maximum(vx * vy, 1e-300))


def effective_sample_size(x: np.ndarray, clusters: np.ndarray | None) -> float:
    """How many independent units the clustered mean is worth: n × (the i.i.d. variance of the mean ÷ the
    cluster-robust one). Equal to n when clusters do not matter, smaller when units of a cluster agree."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float(n)
    idx = Sample((x,), clusters).cluster_index()
    k = int(idx.max()) + 1
    dev = x - x.mean()
    iid = dev.var(ddof=1) / n
    if k < 2:
        return 1.0
    per_cluster = np.bincount(idx, weights=dev, minlength=k)
    robust = k / (k - 1) * float((per_cluster ** 2).sum()) / n ** 2
    return float(n * iid / robust) if robust > 0 else float(n)
