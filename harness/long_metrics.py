"""The long-context quantities (harness/long_probes.py measures them), defined once like every other quantity
(harness.metrics.Quantity) and estimated with its bootstrap:

- by position: the long windows' positions fall in four buckets, [0, L/16), [L/16, L/4), [L/4, L/2), [L/2, L)
  for a longest window of L tokens (0–512, 512–2k, 2k–4k, 4k–8k at 8k). Units are blocks of L/32 consecutive
  positions of one window (256 at 8k), paired with fp16's blocks of the same positions; a bucket's KLD, PPL and
  ΔPPL are harness.metrics' KLD_MEAN, PPL and PPL_INCREASE summaries over its blocks instead of windows.
- the rise: the last bucket's mean KLD minus the first's (nats), each bucket's blocks resampled on its own. A
  position encoding lost in conversion (a RoPE scaling the GGUF does not carry) leaves early positions nearly
  intact and ruins the late ones.
- retrieval: the share of planted facts whose value the runtime's top token gives, and its drop from fp16's
  (points); units are whole long windows (their facts share one haystack), summed: a ratio estimator.

Blocks of one window are not independent; these intervals are marked not validated (harness/gate/
interval-coverage.json) until a resampling study says otherwise."""
from __future__ import annotations

import numpy as np

from evaluators.stats import wmean
from harness import metrics as M
from harness.metrics import NotMeasured, Quantity

B = "long-window blocks"
NW = "long windows"
BLOCKS_PER_WINDOW = 32  # blocks of the longest window
RISE_FLOOR_NATS = 0.05  # a rise below this is no lost position encoding, whatever its interval


def edges(long_ctx: int) -> list[int]:
    return [0, long_ctx // 16, long_ctx // 4, long_ctx // 2, long_ctx]


def _short(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def bucket_names(long_ctx: int) -> list[str]:
    e = edges(long_ctx)
    return [f"{_short(a)}_{_short(b)}" for a, b in zip(e, e[1:])]


def _need_long(cell, what: str):
    if cell is None or cell.long_nll is None:
        raise NotMeasured(f"long windows of {getattr(cell, 'variant', '?')} × {getattr(cell, 'runtime', '?')} were not scored")
    if what == "kld" and cell.long_kld is None:
        raise NotMeasured(f"long-window KLD of {cell.variant} × {cell.runtime} was not measured")
    return cell.long_nll if what == "nll" else cell.long_kld


def block_means(per_window: list[np.ndarray], long_ctx: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each block of L/32 positions of every window, and the bucket (0..3) each block is in."""
    size = max(1, long_ctx // BLOCKS_PER_WINDOW)
    e = edges(long_ctx)
    means, bucket = [], []
    for x in per_window:
        for a in range(0, len(x), size):
            means.append(float(np.mean(x[a: a + size])))
            bucket.append(int(np.searchsorted(e, a, side="right") - 1))
    return np.asarray(means), np.asarray(bucket)


def _blocks(cell, what: str, j: int | None = None):
    m, b = block_means(_need_long(cell, what), cell.long_ctx)
    return (m, b) if j is None else m[b == j]


def _block_nll_diff(cell, ref, j: int):
    a, r = _blocks(cell, "nll", j), _blocks(ref, "nll", j)
    if a.shape != r.shape or cell.long_ctx != ref.long_ctx:
        raise NotMeasured(f"{cell.variant} × {cell.runtime} scored other long windows than fp16")
    return (a - r,)


def kld_mean_at(j: int, long_ctx: int) -> Quantity:
    name = bucket_names(long_ctx)[j]
    return Quantity(f"long_kld_mean_{name}", f"mean KLD vs fp16 at positions {name.replace('_', '–')} (nats)", "nats", B,
                    lambda cell, _ref: (_blocks(cell, "kld", j),), M.KLD_MEAN.summary)


def ppl_increase_at(j: int, long_ctx: int) -> Quantity:
    name = bucket_names(long_ctx)[j]
    return Quantity(f"long_ppl_increase_pct_{name}", f"PPL increase vs fp16 at positions {name.replace('_', '–')} (%)",
                    "%", B, lambda cell, ref: _block_nll_diff(cell, ref, j), M.PPL_INCREASE.summary, paired=True)


def ppl_at(j: int, long_ctx: int) -> Quantity:
    name = bucket_names(long_ctx)[j]
    return Quantity(f"long_ppl_{name}", f"perplexity at positions {name.replace('_', '–')}", "", B,
                    lambda cell, _ref: (_blocks(cell, "nll", j),), M.PPL.summary)


def _rise_data(cell, _ref):
    m, b = _blocks(cell, "kld")
    last = int(b.max())
    if last == 0:
        raise NotMeasured("the long windows reach only the first position bucket")
    return (m[b == last],), (m[b == 0],)


def _rise(ws, xs):
    return wmean(xs[0][0], ws[0]) - wmean(xs[1][0], ws[1])


KLD_RISE = Quantity("long_kld_rise", "late-position KLD minus early-position KLD (nats)", "nats", B, _rise_data, _rise,
                    strata=True)


def _hits(cell):
    if cell is None or cell.needle_hits is None:
        raise NotMeasured(f"retrieval of {getattr(cell, 'variant', '?')} × {getattr(cell, 'runtime', '?')} was not measured")
    return cell.needle_hits, cell.needle_window


def _per_window(hits: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ws = np.unique(window)
    return (np.array([hits[window == w].sum() for w in ws], dtype=np.float64),
            np.array([(window == w).sum() for w in ws], dtype=np.float64))


def _accuracy_data(cell, _ref):
    return _per_window(*_hits(cell))


def _drop_data(cell, ref):
    (a, wa), (r, wr) = _hits(cell), _hits(ref)
    if len(a) != len(r) or not np.array_equal(wa, wr):
        raise NotMeasured(f"{cell.variant} × {cell.runtime} answered other facts than fp16")
    got, n = _per_window(a, wa)
    return _per_window(r, wr)[0] - got, n


NEEDLE_ACCURACY = Quantity("needle_accuracy", "share of planted facts retrieved", "fraction", NW, _accuracy_data,
                           lambda w, xs: (w * xs[0]).sum(-1) / (w * xs[1]).sum(-1), higher_is_worse=False)
NEEDLE_DROP = Quantity("needle_accuracy_drop", "facts retrieved: fp16's share minus this cell's (points)", "points", NW,
                       _drop_data, lambda w, xs: 100.0 * (w * xs[0]).sum(-1) / (w * xs[1]).sum(-1), paired=True)


def quantities(long_ctx: int) -> list[Quantity]:
    """Every long-context quantity of a run whose longest window is long_ctx tokens, in report order."""
    n = len(bucket_names(long_ctx))
    return ([kld_mean_at(j, long_ctx) for j in range(n)] + [ppl_increase_at(j, long_ctx) for j in range(n)] +
            [ppl_at(j, long_ctx) for j in range(n)] + [KLD_RISE, NEEDLE_ACCURACY, NEEDLE_DROP])


def late_kld_mean(long_ctx: int) -> Quantity:
    return kld_mean_at(len(bucket_names(long_ctx)) - 1, long_ctx)


def curve(cell) -> dict | None:
    """The report's KLD-by-position curve: each block position's mean over the windows that reach it."""
    if cell is None or cell.long_kld is None:
        return None
    size = max(1, cell.long_ctx // BLOCKS_PER_WINDOW)
    sums: dict[int, list[float]] = {}
    for x in cell.long_kld:
        for a in range(0, len(x), size):
            sums.setdefault(a, []).append(float(np.mean(x[a: a + size])))
    starts = sorted(sums)
    return {"position": [a + size / 2 for a in starts], "kld": [float(np.mean(sums[a])) for a in starts],
            "windows": [len(sums[a]) for a in starts]}


def grid(cell, needles: list[dict]) -> dict | None:
    """Retrieval per window length × depth: facts retrieved and planted."""
    if cell is None or cell.needle_hits is None:
        return None
    lengths = sorted({n["length"] for n in needles})
    depths = sorted({n["depth_pct"] for n in needles})
    hit = np.zeros((len(lengths), len(depths)))
    total = np.zeros_like(hit)
    for n, h in zip(needles, cell.needle_hits):
        i, j = lengths.index(n["length"]), depths.index(n["depth_pct"])
        hit[i, j] += h
        total[i, j] += 1
    return {"lengths": lengths, "depths": depths, "retrieved": hit.astype(int).tolist(), "planted": total.astype(int).tolist()}
