"""Cluster-resampled intervals (evaluators/stats.py): weighted statistics equal their resampled-multiset
definitions, resampling keeps clusters together, and the effective sample size sees the clustering."""
import itertools
import math

import numpy as np
import pytest

from evaluators.stats import (Bootstrap, Sample, bootstrap_ci, effective_sample_size, resample_weights, wcorr,
                              wmean, wpercentiles)


def test_weighted_statistics_are_those_of_the_resampled_multiset():
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, (12, 7))
    y = x + rng.normal(0, 0.3, (12, 7))
    w = rng.integers(0, 3, (6, 12)).astype(float)
    w[:, 0] += 1
    for i in range(6):
        xs, ys = np.repeat(x, w[i].astype(int), axis=0), np.repeat(y, w[i].astype(int), axis=0)
        assert wmean(x, w[i:i + 1])[0] == pytest.approx(xs.mean())
        assert wpercentiles(x, w[i:i + 1], [0, 1, 50, 99, 99.9, 100])[0] == pytest.approx(
            np.percentile(xs, [0, 1, 50, 99, 99.9, 100]))
        assert wcorr(x, y, w[i:i + 1])[0] == pytest.approx(np.corrcoef(xs.ravel(), ys.ravel())[0, 1])


def test_clusters_are_resampled_whole():
    clusters = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    w = resample_weights(np.random.default_rng(1), Sample((np.zeros(8),), clusters).cluster_index(), 500)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 1] == w[:, 2]).all() and (w[:, 3] == w[:, 4]).all()
    assert (w[:, [0, 3, 5, 6]].sum(axis=1) == 4).all()  # four clusters drawn each time


def test_paired_bootstrap_matches_the_exact_resampling_distribution():
    """n = 4 pairs: all 4^4 resamples enumerated give the exact distribution of the paired mean difference."""
    a = np.array([1.0, 2.0, 4.0, 7.0])
    b = a - np.array([0.5, 0.4, 0.6, 0.5])
    exact = sorted(np.mean(a[list(i)] - b[list(i)]) for i in itertools.product(range(4), repeat=4))
    lo_x, hi_x = np.percentile(exact, [2.5, 97.5])
    stat = lambda ws, xs: wmean(xs[0][0], ws[0]) - wmean(xs[0][1], ws[0])  # noqa: E731
    e = bootstrap_ci(stat, [Sample((a, b))], Bootstrap(seed=3, resamples=200_000))
    assert e.value == pytest.approx(0.5)
    assert e.ci_low == pytest.approx(lo_x, abs=0.01) and e.ci_high == pytest.approx(hi_x, abs=0.01)
    unpaired = bootstrap_ci(lambda ws, xs: wmean(xs[0][0], ws[0]) - wmean(xs[1][0], ws[1]),
                            [Sample((a,)), Sample((b,))], Bootstrap(seed=3, resamples=20_000))
    assert unpaired.ci_high - unpaired.ci_low > 10 * (e.ci_high - e.ci_low)


def test_bootstrap_is_deterministic_per_seed_and_exact_for_constant_data():
    x = np.random.default_rng(0).normal(size=50)
    f = lambda ws, xs: wmean(xs[0][0], ws[0])  # noqa: E731
    assert bootstrap_ci(f, [Sample((x,))], Bootstrap(seed=5)) == bootstrap_ci(f, [Sample((x,))], Bootstrap(seed=5))
    assert bootstrap_ci(f, [Sample((x,))], Bootstrap(seed=5)) != bootstrap_ci(f, [Sample((x,))], Bootstrap(seed=6))
    c = bootstrap_ci(f, [Sample((np.zeros(30),))], Bootstrap())
    assert (c.value, c.ci_low, c.ci_high) == (0.0, 0.0, 0.0)


def test_clustered_windows_widen_the_interval_and_cut_the_effective_sample_size():
    rng = np.random.default_rng(2)
    articles = np.repeat(np.arange(8), 6)  # 48 windows, 6 from each of 8 articles
    x = rng.normal(0, 1, 8)[articles] + rng.normal(0, 0.2, 48)  # windows of an article agree
    f = lambda ws, xs: wmean(xs[0][0], ws[0])  # noqa: E731
    iid = bootstrap_ci(f, [Sample((x,))])
    by_article = bootstrap_ci(f, [Sample((x,), articles)])
    assert by_article.ci_high - by_article.ci_low > 1.8 * (iid.ci_high - iid.ci_low)
    assert effective_sample_size(x, articles) < 12 < effective_sample_size(x, None) == pytest.approx(48)
    assert math.isclose(effective_sample_size(rng.normal(size=48), np.arange(48)), 48, rel_tol=0.2)
