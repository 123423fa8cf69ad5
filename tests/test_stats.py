import math

import numpy as np

from evaluators.stats import mean_ci, paired_ppl_ratio_ci, ppl_ci


def test_mean_ci_contains_mean_and_shrinks():
    rng = np.random.default_rng(0)
    small = mean_ci(rng.normal(3, 1, 10))
    big = mean_ci(rng.normal(3, 1, 1000))
    assert small.ci_low < small.value < small.ci_high
    assert (big.ci_high - big.ci_low) < (small.ci_high - small.ci_low)
    assert big.ci_low < 3 < big.ci_high


def test_ppl_is_exp_of_mean_nll():
    nll = [2.0, 3.0, 4.0]
    e = ppl_ci(nll)
    assert math.isclose(e.value, math.exp(3.0))
    assert e.ci_low < e.value < e.ci_high


def test_paired_ratio_is_tighter_than_unpaired():
    rng = np.random.default_rng(1)
    base = rng.normal(3, 0.5, 50)  # windows differ a lot
    variant = base + 0.05 + rng.normal(0, 0.01, 50)  # but the variant shifts each one a little
    r = paired_ppl_ratio_ci(variant, base)
    assert math.isclose(r.value, math.exp(np.mean(variant - base)))
    assert r.ci_low > 1.0  # the paired CI resolves a 5% difference
    a, b = ppl_ci(variant), ppl_ci(base)
    assert a.ci_low < b.ci_high  # the unpaired CIs overlap
