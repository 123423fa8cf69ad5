"""The generation quantities, over prompts (harness/generation.py defines what is measured): how much of each
cell's greedy output stays fp16's, and how often it degenerates. Estimates and intervals come from
harness.metrics like every other quantity: percentile bootstrap over prompts, paired with fp16's continuation
of the same prompt wherever the quantity compares."""
from __future__ import annotations

import numpy as np

from evaluators.stats import wmean
from harness import generation as G
from harness.metrics import NotMeasured, Quantity, _pct

P = "prompts"


def _gen(cell, what: str = "greedy generations"):
    if cell is None or cell.generation is None:
        raise NotMeasured(f"{what} of {getattr(cell, 'variant', '?')} × {getattr(cell, 'runtime', '?')} were not made")
    return cell.generation


def _pair(cell, ref):
    a, r = _gen(cell), _gen(ref)
    if len(a) != len(r):
        raise NotMeasured(f"{cell.variant} × {cell.runtime} continued {len(a)} prompts, fp16 {len(r)}")
    return a, r


def _divergence(cell, ref):
    a, r = _pair(cell, ref)
    return (G.divergences(a, r, cell.gen_n_new),)


def _identical_at(t: int):
    def data(cell, ref):
        a, r = _pair(cell, ref)
        if cell.gen_n_new is not None and cell.gen_n_new < t:  # a continuation shorter than t says nothing of t
            raise NotMeasured(f"identical after {t} tokens: {cell.variant} × {cell.runtime} generated only "
                              f"{cell.gen_n_new} tokens per prompt")
        return (G.identical_after(G.divergences(a, r, cell.gen_n_new), t),)  # the survival curve's own definition
    return data


def _loops(cell, _ref):
    return (G.loops(_gen(cell)),)


def _loop_change(cell, ref):
    a, r = _pair(cell, ref)
    return (G.loops(a) - G.loops(r),)


def _degenerate(cell, ref):
    a = _gen(cell)
    r = _gen(ref) if ref is not None else a
    return (G.degenerate(a, r),)


def _degenerate_change(cell, ref):
    a, r = _pair(cell, ref)
    return (G.degenerate(a, r) - G.degenerate(r, r),)


def _distinct2(cell, _ref):
    return (G.distinct2s(_gen(cell)),)


_mean = lambda w, xs: wmean(xs[0], w)  # noqa: E731
_points = lambda w, xs: 100.0 * wmean(xs[0], w)  # noqa: E731

IDENTICAL_AT = {t: Quantity(f"gen_identical_at_{t}", f"share of continuations identical to fp16's after {t} tokens",
                            "fraction", P, _identical_at(t), _mean, higher_is_worse=False, paired=True)
                for t in G.SURVIVAL_POINTS}
MEDIAN_DIVERGENCE = Quantity("gen_median_tokens_to_divergence", "median tokens before the first difference from fp16",
                             "tokens", P, _divergence, _pct(50), higher_is_worse=False, paired=True, percentile=50)
LOOP_RATE = Quantity("gen_loop_rate", "share of continuations that loop", "fraction", P, _loops, _mean)
LOOP_RATE_INCREASE = Quantity("gen_loop_rate_increase", "loop rate minus fp16's (points)", "points", P, _loop_change,
                              _points, paired=True)
DEGENERATE_RATE = Quantity("gen_degenerate_rate", "share degenerate (a loop, an early end or an empty answer)",
                           "fraction", P, _degenerate, _mean)
DEGENERATE_RATE_INCREASE = Quantity("gen_degenerate_rate_increase", "degenerate rate minus fp16's (points)", "points",
                                    P, _degenerate_change, _points, paired=True)
DISTINCT2 = Quantity("gen_distinct2", "distinct-2 (distinct bigrams per bigram, mean over continuations)", "fraction",
                     P, _distinct2, _mean, higher_is_worse=False)

GEN_QUANTITIES = (*IDENTICAL_AT.values(), MEDIAN_DIVERGENCE, LOOP_RATE, LOOP_RATE_INCREASE, DEGENERATE_RATE,
                  DEGENERATE_RATE_INCREASE, DISTINCT2)
