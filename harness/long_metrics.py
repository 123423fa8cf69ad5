"""The long-context quantities (harness/long_probes.py measures them), defined once like every other quantity
(harness.metrics.Quantity) and estimated with its bootstrap:

- by position: the long windows' positions fall in four buckets, [0, L/16), [L/16, L/4), [L/4, L/2), [L/2, L)
  for a longest window of L tokens (0–512, 512–2k, 2k–4k, 4k–8k at 8k). Units are whole long windows (positions of
  one window share one text and one context, so they are never resampled apart): a bucket's mean KLD, PPL and
  ΔPPL are ratio estimators, the sum over the bucket's positions of the windows drawn over their count, paired with
  fp16's same windows. An interval needs MIN_WINDOWS windows reaching the bucket (--long-windows 5; the release
  profile has 9 per length); with fewer the figure is a value without interval (point()), and no rule reads it.
- the rise: the last bucket's mean KLD minus the first's (nats) in the windows that reach the last bucket, those
  windows resampled as units. A position encoding
  lost in conversion (a RoPE scaling the GGUF does not carry) leaves early positions nearly intact and ruins the
  late ones.
- retrieval: the share of planted facts whose value the runtime's top token gives, and its drop from fp16's
  (points); units are whole long windows (their facts share one haystack), summed: a ratio estimator.

These intervals are marked not validated (harness/gate/interval-coverage.json) until a coverage study of them is
archived; blocks of one window (the unit before) were not independent."""
from __future__ import annotations

import numpy as np

from harness import metrics as M
from harness.metrics import NotMeasured, Quantity

NW = "long windows"
BLOCKS_PER_WINDOW = 32  # blocks of the longest window
RISE_FLOOR_NATS = 0.05  # a rise below this is no lost position encoding, whatever its interval
# With fewer than MIN_WINDOWS windows reaching the latest positions, the BROKEN check goes window by window: every
# such window's late KLD must exceed its early KLD by more than both this and the early KLD itself. Its false
# alarms, counted on the archived CPU runs (measurements/cpu-smollm2-quick, cpu-smollm2-long default and ladder):
# 0 of 11 cells, gguf-f16 to Q2_K, whose rises lay between -0.076 and +0.068 nats; a lost RoPE scaling rises by
# ten times its early KLD (tests/test_long_context.py).
WINDOW_RISE_NATS = 0.10


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


MIN_WINDOWS = 5  # windows reaching a bucket before its figures get an interval (fewer: a value, no interval)
_min_windows = [MIN_WINDOWS]  # point() lowers it to 1 for the descriptive value


class TooFewWindows(NotMeasured):
    """Fewer than MIN_WINDOWS windows reach these positions: no interval (point() gives the value alone)."""


def window_sums(per_window, long_ctx: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window that reaches bucket j: the sum of its values at the bucket's positions, and their count."""
    e = edges(long_ctx)
    sums, counts = [], []
    for x in per_window:
        part = np.asarray(x[e[j]: e[j + 1]], dtype=np.float64)
        if len(part):
            sums.append(float(part.sum()))
            counts.append(float(len(part)))
    if len(sums) < _min_windows[0]:
        raise TooFewWindows(f"{len(sums)} long window(s) reach positions {bucket_names(long_ctx)[j].replace('_', '–')}: "
                            f"an interval needs {MIN_WINDOWS} (--long-windows {MIN_WINDOWS})")
    return np.asarray(sums), np.asarray(counts)


def _bucket(cell, what: str, j: int):
    return window_sums(_need_long(cell, what), cell.long_ctx, j)


def _bucket_nll_diff(cell, ref, j: int):
    if cell.long_ctx != ref.long_ctx or len(_need_long(cell, "nll")) != len(_need_long(ref, "nll")):
        raise NotMeasured(f"{cell.variant} × {cell.runtime} scored other long windows than fp16")
    diff = [np.asarray(a, dtype=np.float64) - np.asarray(r, dtype=np.float64)
            for a, r in zip(cell.long_nll, ref.long_nll)]
    if any(len(d) != len(a) for d, a in zip(diff, cell.long_nll)):
        raise NotMeasured(f"{cell.variant} × {cell.runtime} scored other long windows than fp16")
    return window_sums(diff, cell.long_ctx, j)


def _ratio(w, xs):
    return (w * xs[0]).sum(-1) / (w * xs[1]).sum(-1)


def kld_mean_at(j: int, long_ctx: int) -> Quantity:
    name = bucket_names(long_ctx)[j]
    return Quantity(f"long_kld_mean_{name}", f"mean KLD vs fp16 at positions {name.replace('_', '–')} (nats)", "nats", NW,
                    lambda cell, _ref: _bucket(cell, "kld", j), _ratio)


def ppl_increase_at(j: int, long_ctx: int) -> Quantity:
    name = bucket_names(long_ctx)[j]
    return Quantity(f"long_ppl_increase_pct_{name}", f"PPL increase vs fp16 at positions {name.replace('_', '–')} (%)",
                    "%", NW, lambda cell, ref: _bucket_nll_diff(cell, ref, j),
                    lambda w, xs: 100.0 * np.expm1(_ratio(w, xs)), paired=True)


def ppl_at(j: int, long_ctx: int) -> Quantity:
    name = bucket_names(long_ctx)[j]
    return Quantity(f"long_ppl_{name}", f"perplexity at positions {name.replace('_', '–')}", "", NW,
                    lambda cell, _ref: _bucket(cell, "nll", j), lambda w, xs: np.exp(_ratio(w, xs)))


def _rise_data(cell, _ref):
    """Per window that reaches the last bucket: its KLD sum and count there and in the first bucket (the rise is a
    contrast within the same windows: the same text at its start and its end)."""
    per = _need_long(cell, "kld")
    e = edges(cell.long_ctx)
    last, first = len(e) - 2, 0
    rows = []
    for x in per:
        x = np.asarray(x, dtype=np.float64)
        late, early = x[e[last]: e[last + 1]], x[e[first]: e[first + 1]]
        if len(late):
            rows.append((late.sum(), len(late), early.sum(), len(early)))
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 4).T
    reach = a.shape[1]
    if reach == 0:
        raise NotMeasured("the long windows reach only the first position bucket")
    if reach < _min_windows[0]:
        raise TooFewWindows(f"{reach} long window(s) reach the latest positions: an interval needs {MIN_WINDOWS} "
                            f"(--long-windows {MIN_WINDOWS})")
    return tuple(a)


def _rise(w, xs):
    return (w * xs[0]).sum(-1) / (w * xs[1]).sum(-1) - (w * xs[2]).sum(-1) / (w * xs[3]).sum(-1)


KLD_RISE = Quantity("long_kld_rise", "late-position KLD minus early-position KLD (nats)", "nats", NW, _rise_data, _rise)


def windows_losing_positions(cell) -> str | None:
    """The BROKEN rule for too few windows: each window reaching the latest bucket rises by more than
    WINDOW_RISE_NATS and its own early KLD. Returns the rises ("0.31, 0.29") when every one does, else None."""
    e = edges(cell.long_ctx)
    rises = []
    for x in _need_long(cell, "kld"):
        x = np.asarray(x, dtype=np.float64)
        late, early = x[e[-2]: e[-1]], x[: e[1]]
        if len(late) and len(early):
            r = float(late.mean() - early.mean())
            if not (r > WINDOW_RISE_NATS and r > early.mean()):
                return None
            rises.append(r)
    return ", ".join(f"{r:.3f}" for r in rises) if rises else None


def point(q: Quantity, cell, ref) -> float:
    """A long quantity's value where too few windows reach its positions for an interval (a figure, not a rule)."""
    _min_windows[0] = 1
    try:
        xs = q.data(cell, ref)
    finally:
        _min_windows[0] = MIN_WINDOWS
    return float(q.summary(np.ones((1, len(xs[0]))), xs)[0])


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
