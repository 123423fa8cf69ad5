"""The generation comparison's definitions (harness/generation.py): divergence, loops, early ends, empty
answers, distinct-2, survival."""
import numpy as np

from harness.generation import (Continuation, cut, degenerate_kinds, distinct2, first_divergence, has_loop, loop_at,
                                survival)

EOS = (2,)


def c(*tokens, ended=False, blank=False):
    return Continuation(tuple(tokens), ended, blank)


def test_cut_at_the_first_end_of_sequence():
    assert cut([5, 6, 2, 7, 2], EOS) == c(5, 6, ended=True)
    assert cut([5, 6, 7], EOS) == c(5, 6, 7)
    assert cut([2, 5], EOS) == c(ended=True)


def test_first_divergence():
    ref = c(1, 2, 3, 4)
    assert first_divergence(c(1, 2, 3, 4), ref, 4) == 4  # identical through the budget
    assert first_divergence(c(1, 2, 9, 4), ref, 4) == 2
    assert first_divergence(c(9, 2, 3, 4), ref, 4) == 0
    # one ends where the other goes on: they part there
    assert first_divergence(c(1, 2, ended=True), ref, 4) == 2
    assert first_divergence(c(1, 2, 3, 4), c(1, 2, ended=True), 4) == 2
    # both end at the same place: identical
    assert first_divergence(c(1, 2, ended=True), c(1, 2, ended=True), 4) == 4


def test_loops():
    assert has_loop(c(*([7, 8, 9, 10] * 3)))  # a 4-gram three times back to back
    assert not has_loop(c(*([7, 8, 9, 10] * 2), 11, 12, 13, 14))  # twice is not a loop
    assert has_loop(c(1, 2, 3, *([5] * 12)))  # a periodic tail of one token over 12
    assert not has_loop(c(1, *([5] * 5), 6))  # "the the the the the" once is not
    assert loop_at([1, 2, 3, 4, 5, 6, 4, 5, 6, 4, 5, 6, 4, 5, 6]) == (3, 3)  # 3-gram x4 covers 12 tokens
    assert loop_at(list(range(64))) is None
    long = [int(x) for x in np.random.default_rng(0).integers(10, 1000, 20)]
    assert has_loop(c(*(long * 3))) and not has_loop(c(*(long * 2)))  # a 20-token block three times


def test_degenerate_kinds_are_judged_against_fp16():
    ref_going = c(1, 2, 3, 4)
    assert degenerate_kinds(c(1, ended=True), ref_going) == ["early end"]
    assert degenerate_kinds(c(1, ended=True), c(1, ended=True)) == []  # fp16 stopped there too
    assert degenerate_kinds(c(ended=True), ref_going) == ["early end", "empty"]
    assert degenerate_kinds(c(1, 3, blank=True), ref_going) == ["empty"]
    assert degenerate_kinds(c(*([4, 5, 6, 7] * 3)), ref_going) == ["loop"]


def test_distinct2_and_survival():
    assert distinct2(c(1, 2, 3, 4)) == 1.0
    assert distinct2(c(1, 2, 1, 2, 1)) == 0.5  # bigrams (1,2),(2,1),(1,2),(2,1)
    assert distinct2(c(1)) == 0.0
    s = survival(np.array([0, 2, 4, 4]), 4)
    assert list(s) == [1.0, 0.75, 0.75, 0.5, 0.5]


def test_every_generation_quantity_is_a_results_metric():
    from harness.generation_metrics import GEN_QUANTITIES
    from harness.schema import METRICS

    for q in GEN_QUANTITIES:
        assert METRICS.get(q.metric) == q.unit, q.metric
