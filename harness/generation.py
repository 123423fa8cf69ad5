"""Greedy generations of every cell against fp16 × transformers': where each continuation first differs from
fp16's, and whether it degenerated (a loop, an early end, an empty answer).

Everything is a function of token ids, defined once here: results.json's rows (as harness/metrics quantities
over prompts), the report's survival plot and viewer, and the gate read the same definitions.

- A continuation is the n_new greedy tokens after a prompt, cut at the first end-of-sequence token.
- It first differs from fp16's at position d: the first token that differs, or where one of the two ended and
  the other did not. Identical continuations get d = n_new (never diverged within the budget).
- A loop: some block of p tokens repeated back to back, at least three times and over at least LOOP_MIN_SPAN
  tokens (a 4-gram three times; "the the the ..." twelve times); a periodic tail is such a block at the end.
- An early end: the continuation ended where fp16's did not. Empty: nothing, or only whitespace, before the end.
- Degenerate: any of the three. fp16's own loops count too; a variant is judged by the change."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOOP_MIN_REPEATS = 3
LOOP_MIN_SPAN = 12
LOOP_MAX_PERIOD = 24
SURVIVAL_POINTS = (16, 32, 64)  # identical-to-fp16 shares reported as rows


@dataclass(frozen=True)
class Continuation:
    tokens: tuple[int, ...]  # before the end of sequence
    ended: bool  # an end-of-sequence token came within the budget
    blank: bool = False  # decodes to nothing but whitespace (set where the text is known)


def cut(tokens, eos_ids) -> Continuation:
    """The continuation up to (not including) the first end-of-sequence token."""
    eos = set(int(e) for e in eos_ids)
    toks = [int(t) for t in tokens]
    for i, t in enumerate(toks):
        if t in eos:
            return Continuation(tuple(toks[:i]), True)
    return Continuation(tuple(toks), False)


def first_divergence(a: Continuation, ref: Continuation, n_new: int) -> int:
    """Tokens a continuation shares with fp16's before they part (n_new when they never do)."""
    k = 0
    for x, y in zip(a.tokens, ref.tokens):
        if x != y:
            return k
        k += 1
    if len(a.tokens) == len(ref.tokens) and a.ended == ref.ended:
        return n_new
    return k  # one ended (or was cut) here and the other went on


def loop_at(tokens) -> tuple[int, int] | None:
    """(start, period) of the first block repeated back to back LOOP_MIN_REPEATS times over at least
    LOOP_MIN_SPAN tokens; None when there is none."""
    t = np.asarray(tokens, dtype=np.int64)
    n = len(t)
    for p in range(1, min(LOOP_MAX_PERIOD, n // LOOP_MIN_REPEATS) + 1):
        need = max(LOOP_MIN_REPEATS * p, LOOP_MIN_SPAN)  # the periodic segment's length
        if need > n:
            continue
        same = t[p:] == t[:-p]  # same[j]: t[j] == t[j + p]
        run = 0
        for j, s in enumerate(same):
            run = run + 1 if s else 0
            if run + p >= need:  # t[j - run + 1 : j + p + 1] is periodic with period p
                return j - run + 1, p
    return None


def has_loop(c: Continuation) -> bool:
    return loop_at(c.tokens) is not None


def early_end(c: Continuation, ref: Continuation) -> bool:
    return c.ended and not ref.ended


def empty(c: Continuation) -> bool:
    return len(c.tokens) == 0 or c.blank


def degenerate_kinds(c: Continuation, ref: Continuation) -> list[str]:
    kinds = []
    if has_loop(c):
        kinds.append("loop")
    if early_end(c, ref):
        kinds.append("early end")
    if empty(c):
        kinds.append("empty")
    return kinds


def distinct2(c: Continuation) -> float:
    """Distinct bigrams over bigrams of one continuation (0 when it has fewer than two tokens)."""
    grams = list(zip(c.tokens, c.tokens[1:]))
    return len(set(grams)) / len(grams) if grams else 0.0


def identical_after(divergence: np.ndarray, t: int) -> np.ndarray:
    """Per prompt: 1.0 while its continuation is still fp16's after t tokens (it first differs at t or later)."""
    return (np.asarray(divergence) >= t).astype(np.float64)


def survival(divergence: np.ndarray, n_new: int) -> np.ndarray:
    """Share of prompts still identical to fp16 after t tokens, t = 0..n_new: the mean of identical_after."""
    d = np.asarray(divergence)
    return np.array([identical_after(d, t).mean() if len(d) else np.nan for t in range(n_new + 1)])


# -- per-prompt arrays for harness/metrics (one entry per prompt) ------------------------------------------

def divergences(cell: list[Continuation], ref: list[Continuation], n_new: int) -> np.ndarray:
    return np.array([first_divergence(a, r, n_new) for a, r in zip(cell, ref)], dtype=np.float64)


def loops(cell: list[Continuation]) -> np.ndarray:
    return np.array([float(has_loop(c)) for c in cell])


def degenerate(cell: list[Continuation], ref: list[Continuation]) -> np.ndarray:
    return np.array([float(bool(degenerate_kinds(a, r))) for a, r in zip(cell, ref)])


def distinct2s(cell: list[Continuation]) -> np.ndarray:
    return np.array([distinct2(c) for c in cell])
