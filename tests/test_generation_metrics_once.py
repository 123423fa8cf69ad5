"""The share of continuations still fp16's after t tokens has one definition (harness/generation.identical_after): the
survival curve the report draws and the gen_identical_at_t rows the gate reads are the same numbers."""
import numpy as np

from harness import generation as G
from harness import generation_metrics as GM


class _Cell:
    def __init__(self, variant, gen, n_new):
        self.variant, self.runtime, self.generation, self.gen_n_new = variant, "rt", gen, n_new


def test_the_rows_and_the_survival_curve_agree():
    rng = np.random.default_rng(0)
    n_new = 64
    ref = [G.Continuation(tuple(int(x) for x in rng.integers(0, 50, n_new)), False) for _ in range(40)]
    cell = [G.Continuation(r.tokens[:k] + (999,) * (n_new - k), False)
            for r, k in zip(ref, rng.integers(0, n_new + 1, 40))]
    curve = G.survival(G.divergences(cell, ref, n_new), n_new)
    for t, q in GM.IDENTICAL_AT.items():
        (x,) = q.data(_Cell("v", cell, n_new), _Cell("fp16", ref, n_new))
        assert x.mean() == curve[t]
