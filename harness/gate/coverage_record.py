"""Which gate rules have an interval whose coverage was shown by resampling (harness/coverage.py), and what it
was. interval-coverage.json, beside this file, is written from a study's coverage.json (`python -m
harness.coverage ... --record`, harness.coverage.record_from_study); tests/test_coverage.py checks that the two agree. A rule whose quantity is not
there, or covered outside 95 ± 3%, is marked "interval not validated" in verdict.md."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

RECORD_FILE = Path(__file__).with_name("interval-coverage.json")
# policy key -> the quantity its interval is the interval of (as the coverage study names it)
RULE_QUANTITY = {"max_ppl_increase_pct": "ppl_increase_pct", "max_kld_mean": "kld_mean", "max_kld_p99": "kld_p99",
                 "min_top1_agreement": "top1_agreement", "max_delta_p_rms": "delta_p_rms",
                 "max_acc_drop_points": "acc_delta_vs_fp16", "max_flip_rate": "flip_rate"}


@lru_cache(maxsize=1)
def _record() -> dict:
    try:
        return json.loads(RECORD_FILE.read_text())
    except (OSError, ValueError):
        return {"windows": {}, "tasks": {}}


KLD_QUANTITIES = ("kld_mean", "kld_p99", "top1_agreement")  # their record holds for its KLD method only


def interval_coverage(rule: str, run: dict | None = None) -> float | None:
    """The coverage shown for this rule's interval in a run with these settings, or None (not validated).

    A record holds for the settings it was studied at only: windows per run and the resampling unit (window
    rules), the KLD method (KLD rules), documents per task (task rules). run: {"windows", "resampled_by",
    "kld_method", "task_limit"}; a setting it lacks matches nothing. Baseline rules (a change between two runs)
    and rules of tasks the study did not score are not validated."""
    if rule.startswith("baseline."):
        return None
    key, _, task = rule.partition("[")
    quantity = RULE_QUANTITY.get(key)
    if quantity is None:
        return None
    rec, run = _record(), run or {}
    if task:
        by_limit = (rec.get("tasks") or {}).get(task.rstrip("]")) or {}
        return (by_limit.get(str(run.get("task_limit"))) or {}).get(quantity)
    if run.get("resampled_by") is None or run.get("resampled_by") != rec.get("resampled_by"):
        return None
    if quantity in KLD_QUANTITIES and run.get("kld_method") != rec.get("kld_method"):
        return None
    return ((rec.get("windows") or {}).get(str(run.get("windows"))) or {}).get(quantity)


def source() -> str | None:
    return _record().get("source")
