"""The intervals hold their 95%: a fast version of the coverage study (harness/coverage.py) on the default
model's stored per-window NLLs (every window of WikiText-2 test scored once, measurements/coverage-smollm2)."""
import json
from pathlib import Path

from evaluators.stats import Bootstrap
from harness.coverage import HARNESS, study

DATA = Path(__file__).resolve().parent.parent / "measurements" / "coverage-smollm2" / "windows.json"


def test_ppl_and_paired_delta_intervals_cover_the_all_windows_value():
    data = json.loads(DATA.read_text())
    res = study(data, n=48, draws=200, boot=Bootstrap(resamples=1000))
    harness = res["methods"][HARNESS]
    for metric in ("ppl", "ppl_increase_pct"):
        assert 0.92 <= harness[metric]["coverage"] <= 0.98, (metric, harness[metric])


def test_the_check_can_fail():
    """An interval at the wrong level (80% called 95%) is caught by the same check."""
    data = json.loads(DATA.read_text())
    res = study(data, n=48, draws=200, boot=Bootstrap(resamples=1000, level=0.80))
    cov = res["methods"][HARNESS]["ppl_increase_pct"]["coverage"]
    assert not 0.92 <= cov <= 0.98, cov
