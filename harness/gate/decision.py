"""One rule's outcome, and the three-way decision of an interval against a limit."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

RULE_TEXT = ("A rule passes when its whole {level:.0%} interval lies on the good side of the limit, fails when the "
             "whole interval lies on the bad side, and is inconclusive when the interval straddles the limit. "
             "A failed or BROKEN-flagged cell, a variant that was not built, or a metric the rule needs that was "
             "not measured fails the rule (fail closed).")


@dataclass
class Decision:
    variant: str
    runtime: str | None
    rule: str  # the policy key, with the task for per-task rules and "baseline." for baseline rules
    metric: str  # what the limit bounds
    comparison: str  # "<=" or ">="
    limit: float | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    decision: str  # pass | fail | inconclusive
    reason: str
    method: str  # how the interval was made
    against: str  # fp16 × transformers, or the baseline's same cell
    interval_coverage: float | None = None  # coverage shown by resampling (harness/gate/coverage_record.py)

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("limit", "estimate", "ci_low", "ci_high"):
            if d[k] is not None and not math.isfinite(d[k]):
                d[k] = None
        return d


def decide(direction: str, limit: float, value: float, lo: float, hi: float) -> tuple[str, str]:
    """direction "max": good when below the limit; "min": good when above it."""
    if any(x is None or not math.isfinite(x) for x in (value, lo, hi)):
        return "fail", "the estimate is not finite"
    if direction == "max":
        if hi <= limit:
            return "pass", f"whole interval [{lo:.4g}, {hi:.4g}] at or under the limit {limit:g}"
        if lo > limit:
            return "fail", f"whole interval [{lo:.4g}, {hi:.4g}] over the limit {limit:g}"
    else:
        if lo >= limit:
            return "pass", f"whole interval [{lo:.4g}, {hi:.4g}] at or over the limit {limit:g}"
        if hi < limit:
            return "fail", f"whole interval [{lo:.4g}, {hi:.4g}] under the limit {limit:g}"
    return "inconclusive", f"interval [{lo:.4g}, {hi:.4g}] straddles the limit {limit:g}"
