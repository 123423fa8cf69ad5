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


def test_the_gates_record_is_the_studys():
    """harness/gate/interval-coverage.json says what the archived coverage study showed, no more."""
    from harness.coverage import record_from_study
    from harness.gate.coverage_record import RECORD_FILE

    record = json.loads(RECORD_FILE.read_text())
    source = Path(__file__).resolve().parent.parent / record["source"]
    assert record == record_from_study(json.loads(source.read_text()), record["source"])
    figures = [*record["windows"].values(), *(f for t in record["tasks"].values() for f in t.values())]
    for f in figures:
        assert all(0.92 <= c <= 0.98 for c in f.values()), f
    assert record["resampled_by"] == "article" and "48" in record["windows"]


def _verdict(settings: dict):
    from harness.gate.policy import parse_policy
    from harness.gate.rules import Gate
    from harness.gate.verdict import build, markdown
    from tests.gate_fixtures import make_results

    r = make_results({"gguf-q4_k_m": {"ppl_shift": 0.03, "kld": 0.05}})
    r["windows"].update(settings)
    policy = parse_policy('policy_version = 1\n[variants."*"]\nmax_ppl_increase_pct = 10.0\nmax_kld_median = 0.5\n'
                          'max_size_mb = 1000\n', "p")
    md = markdown(build(Gate(r, policy).run(), policy, Path("results.json"), r, None, True))
    return md, {line.split(" | ")[2]: line for line in md.splitlines() if line.startswith("| gguf-q4_k_m")}


def test_verdict_marks_the_rules_whose_interval_was_not_validated():
    from harness.gate.coverage_record import interval_coverage

    record = json.loads((Path(__file__).resolve().parent.parent / "harness/gate/interval-coverage.json").read_text())
    studied = {"n_windows": 48, "cluster_kind": record["resampled_by"]}
    md, rows = _verdict(studied)
    assert interval_coverage("max_ppl_increase_pct", {"windows": 48, "resampled_by": record["resampled_by"]}) == \
        record["windows"]["48"]["ppl_increase_pct"]
    assert "max_ppl_increase_pct" in rows  # validated at these settings: no mark
    assert "max_kld_median †" in rows  # no study of the median's interval
    assert "max_size_mb" in rows  # exact, no interval to validate
    assert "† interval not validated" in md
    assert interval_coverage("baseline.max_kld_mean_increase") is None


def test_a_record_holds_only_at_the_settings_it_was_studied_at():
    """A --windows 8 run, or windows resampled one by one, or another KLD method, is not validated (issue 37)."""
    from harness.gate.coverage_record import interval_coverage

    record = json.loads((Path(__file__).resolve().parent.parent / "harness/gate/interval-coverage.json").read_text())
    _, rows = _verdict({"n_windows": 8, "cluster_kind": record["resampled_by"]})
    assert "max_ppl_increase_pct †" in rows
    _, rows = _verdict({"n_windows": 48, "cluster_kind": "window"})
    assert "max_ppl_increase_pct †" in rows
    run = {"windows": 48, "resampled_by": record["resampled_by"], "kld_method": record["kld_method"]}
    assert interval_coverage("max_ppl_increase_pct", run) is not None
    assert interval_coverage("max_ppl_increase_pct", {**run, "windows": 96}) is None  # studied at 48 only
    # KLD quantities hold for the KLD method they were studied with only, tasks for their documents per run only
    from harness.gate import coverage_record

    fake = {"resampled_by": "article", "kld_method": "top-256", "windows": {"48": {"kld_mean": 0.95}},
            "tasks": {"piqa": {"200": {"flip_rate": 0.95}}}}
    real = coverage_record._record
    coverage_record._record = lambda: fake
    try:
        assert interval_coverage("max_kld_mean", {**run, "kld_method": "top-256"}) == 0.95
        assert interval_coverage("max_kld_mean", {**run, "kld_method": "exact: whole vocabulary"}) is None
        assert interval_coverage("max_flip_rate[piqa]", {"task_limit": 200}) == 0.95
        assert interval_coverage("max_flip_rate[piqa]", {"task_limit": 50}) is None
    finally:
        coverage_record._record = real
