"""The release gate: bootstrap against a direct computation, the three decisions, fail-closed rules,
baselines, exit codes and the verdict's schema."""
import json
import math

import pytest

from harness.cli import main
from harness.gate.decision import decide
from harness.gate.policy import load_policy, parse_policy
from harness.gate.rules import Gate
from tests.gate_fixtures import make_results


@pytest.mark.parametrize("direction,limit,interval,expected", [
    ("max", 10, (5, 4, 6), "pass"), ("max", 10, (12, 11, 13), "fail"), ("max", 10, (9, 8, 11), "inconclusive"),
    ("min", 0.8, (0.9, 0.85, 0.95), "pass"), ("min", 0.8, (0.7, 0.65, 0.75), "fail"),
    ("min", 0.8, (0.8, 0.75, 0.85), "inconclusive"), ("max", 10, (math.nan, 1, 2), "fail"),
])
def test_three_decisions(direction, limit, interval, expected):
    assert decide(direction, limit, *interval)[0] == expected


def _decisions(results, policy=None, **kw):
    return Gate(results, policy or load_policy(None), **kw).run()


def test_identical_copy_and_same_weights_never_raise_alarms():
    """fp16 on another runtime with identical scores, and a same-weights variant whose scores differ by
    rounding only, pass every default rule for 20 bootstrap seeds out of 20."""
    for seed in range(20):
        r = make_results({"fp16": {"runtime": "vllm"}, "gguf-f16": {"ppl_shift": 1e-5, "noise": 1e-4, "kld": 1e-4,
                                                                   "flips": 0.005}})
        policy = parse_policy(load_policy(None).text.replace("seed = 0", f"seed = {seed}"), "default")
        ds = _decisions(r, policy)
        assert {d.variant for d in ds} == {"fp16", "gguf-f16"}
        assert all(d.decision == "pass" for d in ds), [d for d in ds if d.decision != "pass"]


def test_clear_loss_fails_and_borderline_is_inconclusive():
    r = make_results({"gguf-q2_k": {"ppl_shift": 0.4, "kld": 0.5, "flips": 0.4},
                      "gguf-q4_k_m": {"ppl_shift": 0.0953, "noise": 0.05, "kld": 0.03, "flips": 0.05}})
    ds = _decisions(r)
    q2 = {d.rule: d.decision for d in ds if d.variant == "gguf-q2_k"}
    assert q2["max_ppl_increase_pct"] == "fail" and q2["max_kld_mean"] == "fail" and q2["max_flip_rate[piqa:acc]"] == "fail"
    q4 = {d.rule: d for d in ds if d.variant == "gguf-q4_k_m"}
    assert q4["max_ppl_increase_pct"].decision == "inconclusive"  # exp(0.0953) = +10.0%: straddles the 10% limit
    assert q4["max_kld_mean"].decision == "pass"


def test_fail_closed_on_failed_broken_unbuilt_and_unmeasured():
    r = make_results({"gguf-q8_0": {"status": "failed"}, "gguf-q6_k": {"broken": True, "kld": 0.01},
                      "gguf-q5_k_m": {"status": "not built"}, "awq-int4": {"kld": 0.01, "runtime": "transformers"}})
    r["task_cells"] = [t for t in r["task_cells"] if t["variant"] != "awq-int4"]
    ds = _decisions(r)
    by = {}
    for d in ds:
        by.setdefault(d.variant, []).append(d)
    assert all(d.decision == "fail" and "cell failed" in d.reason for d in by["gguf-q8_0"])
    assert all(d.decision == "fail" and "BROKEN" in d.reason for d in by["gguf-q6_k"])
    assert [d.rule for d in by["gguf-q5_k_m"]] == ["built"] and by["gguf-q5_k_m"][0].decision == "fail"
    missing = [d for d in by["awq-int4"] if "acc" in d.rule or "flip" in d.rule]
    assert missing and all(d.decision == "fail" and "not measured" in d.reason for d in missing)


def test_policy_names_a_variant_the_run_lacks():
    policy = parse_policy('policy_version = 1\n[variants."gguf-q3_k_m"]\nmax_kld_mean = 0.1\n', "p")
    ds = _decisions(make_results({"gguf-q4_k_m": {"kld": 0.01}}), policy)
    assert [(d.variant, d.decision) for d in ds] == [("gguf-q3_k_m", "fail")]


def test_baseline_rules_same_better_and_unpaired():
    cur = make_results({"gguf-q4_k_m": {"ppl_shift": 0.06, "kld": 0.05, "flips": 0.08}})
    same = _decisions(cur, baseline=cur)
    assert all(d.decision == "pass" for d in same if d.rule.startswith("baseline."))
    better = make_results({"gguf-q4_k_m": {"ppl_shift": 0.01, "kld": 0.01, "flips": 0.01}})
    worse = _decisions(cur, baseline=better)
    b = {d.rule: d.decision for d in worse if d.rule.startswith("baseline.")}
    assert b["baseline.max_ppl_increase_pct_points"] == "fail" and b["baseline.max_kld_mean_increase"] == "fail"
    unp = _decisions(cur, baseline=better, paired_baseline=False)
    assert all("UNPAIRED" in d.method for d in unp if d.rule.startswith("baseline.") and d.method != "—"
               and "exact" not in d.method)


def test_speed_and_size_rules():
    r = make_results({"gguf-q4_k_m": {"kld": 0.01, "size": 1e8, "decode": (200.0, [190.0, 200.0, 210.0])},
                      "gguf-f16": {"kld": 1e-5, "size": 2.7e8, "decode": (100.0, [98.0, 100.0, 102.0])}})
    policy = parse_policy('policy_version = 1\n[variants."gguf-q4_k_m"]\nmax_size_mb = 150\nmin_decode_speedup = 1.5\n'
                          'decode_runtime = "llama.cpp"\n', "p")
    ds = {d.rule: d for d in _decisions(r, policy)}
    assert ds["max_size_mb"].decision == "pass" and ds["max_size_mb"].estimate == pytest.approx(100.0)
    s = ds["min_decode_speedup"]
    assert s.decision == "pass" and s.estimate == pytest.approx(2.0) and s.ci_low == pytest.approx(190 / 102)
    assert s.against == "gguf-f16 × llama.cpp"


def _write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_exit_codes_outputs_and_schema(tmp_path, capsys, monkeypatch):
    from harness.gate.verdict import validate

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    ok = _write(tmp_path, "ok.json", make_results({"gguf-q8_0": {"kld": 0.005, "ppl_shift": 0.005}}))
    assert main(["gate", str(ok), "--resamples", "500"]) == 0
    v = json.loads((tmp_path / "verdict.json").read_text())
    assert validate(v) == [] and v["verdict"] == "pass" and v["bootstrap"]["resamples"] == 500
    assert "quantcompare gate" in summary.read_text() and (tmp_path / "verdict.md").read_text().count("|") > 10
    d = tmp_path / "bad"
    d.mkdir()
    bad = _write(d, "bad.json", make_results({"gguf-q2_k": {"ppl_shift": 0.5, "kld": 0.8, "flips": 0.4}}))
    assert main(["gate", str(bad)]) == 1
    assert validate(json.loads((d / "verdict.json").read_text())) == []
    edge = _write(tmp_path, "edge.json", make_results({"gguf-q4_k_m": {"ppl_shift": 0.0953, "noise": 0.05, "kld": 0.01}}))
    pol = tmp_path / "inc.toml"
    pol.write_text(load_policy(None).text.replace('on_inconclusive = "fail"', 'on_inconclusive = "inconclusive"'))
    assert main(["gate", str(edge), "--policy", str(pol), "--out", str(tmp_path / "e")]) == 3
    capsys.readouterr()
    other = _write(tmp_path, "other.json", make_results({"gguf-q8_0": {"kld": 0.005}}, windows_sha="x" * 64))
    not_toml = tmp_path / "p.toml"
    not_toml.write_text("this is = = not toml")
    unknown_metric = tmp_path / "m.toml"
    unknown_metric.write_text('policy_version = 1\n[variants."*"]\nmax_perplexity_fun = 3\n')
    unknown_variant = tmp_path / "v.toml"
    unknown_variant.write_text('policy_version = 1\n[variants."gguf-q9_z"]\nmax_kld_mean = 3\n')
    unknown_task = tmp_path / "t.toml"
    unknown_task.write_text('policy_version = 1\n[variants."*"]\nmax_flip_rate = { hellaswag = 0.1 }\n')
    foreign = _write(tmp_path, "foreign.json", {"hello": "world"})
    exact = make_results({"gguf-q8_0": {"kld": 0.005}})
    for c in exact["cells"]:
        c["kld_method"] = "exact: whole vocabulary"
    exact_base = _write(tmp_path, "exact.json", exact)
    bound = make_results({"gguf-q8_0": {"kld": 0.005}})
    for c in bound["cells"]:
        c["kld_method"] = "reference top-256 + rest bucket (lower bound)"
    bound = _write(tmp_path, "bound.json", bound)
    assert main(["gate", str(bound), "--baseline", str(exact_base), "--out", str(tmp_path / "k"),
                 "--unpaired-baseline"]) in (0, 1)
    for argv in (["gate", str(bound), "--baseline", str(exact_base)],
                 ["gate", str(tmp_path / "missing.json")], ["gate", str(foreign)],
                 ["gate", str(ok), "--policy", str(not_toml)], ["gate", str(ok), "--policy", str(unknown_metric)],
                 ["gate", str(ok), "--policy", str(unknown_variant)], ["gate", str(ok), "--policy", str(unknown_task)],
                 ["gate", str(ok), "--baseline", str(other)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("quantcompare: error:"), err
    assert main(["gate", str(ok), "--baseline", str(other), "--unpaired-baseline", "--out", str(tmp_path / "u")]) == 0
    u = json.loads((tmp_path / "u" / "verdict.json").read_text())
    assert u["baseline"]["paired"] is False and "UNPAIRED" in (tmp_path / "u" / "verdict.md").read_text()
    assert main(["gate", "--print-default-policy"]) == 0
    assert "policy_version = 1" in capsys.readouterr().out


def test_loop_rule_catches_what_perplexity_misses():
    """Scores as good as fp16's, but half the greedy continuations loop: the PPL rule passes, the loop rule fails."""
    r = make_results({"gguf-q4_k_m": {"ppl_shift": 0.001, "kld": 0.01, "loops": 0.5},
                      "gguf-q8_0": {"ppl_shift": 0.001, "kld": 0.005, "drift": 0.5}})
    policy = parse_policy('policy_version = 1\n[variants."*"]\nmax_ppl_increase_pct = 10.0\n'
                          'max_loop_rate_increase = 10.0\n', "loop policy")  # not in the default (README says why)
    ds = {(d.variant, d.rule): d for d in _decisions(r, policy)}
    assert ds[("gguf-q4_k_m", "max_ppl_increase_pct")].decision == "pass"
    loop = ds[("gguf-q4_k_m", "max_loop_rate_increase")]
    assert loop.decision == "fail" and 35 < loop.estimate < 65 and loop.ci_low > 15
    # drifting away from fp16 is not looping
    assert ds[("gguf-q8_0", "max_loop_rate_increase")].decision == "pass"


def test_the_report_previews_a_ship_choice_only_where_quality_was_measured():
    from harness.gate.preview import default_ship

    r = make_results({"gguf-q4_k_m": {"ppl_shift": 0.01, "kld": 0.01}})
    assert default_ship(r) is not None and "summary" in default_ship(r)
    r["source"] = {"name": "synthetic qwen3-4b shape", "origin": "synthetic"}  # performance only
    assert default_ship(r) is None


def test_an_extreme_is_refused_as_a_rule():
    """A percentile bootstrap never bounds the maximum from above: max_kld_max and p99.9 are descriptive only."""
    from core.errors import UserError

    for key in ("max_kld_max", "max_kld_p999"):
        with pytest.raises(UserError, match=f"{key} is not a gate rule"):
            parse_policy(f'policy_version = 1\n[variants."*"]\n{key} = 1.0\n', "p")
    with pytest.raises(UserError, match="max_kld_p999_increase is not a gate rule"):
        parse_policy('policy_version = 1\n[variants."*".baseline]\nmax_kld_p999_increase = 1.0\n', "p")


def test_the_report_beside_a_verdict_prints_the_verdicts_intervals(tmp_path):
    """A policy with another bootstrap seed: the re-rendered report's rows are the verdict's intervals."""
    import re

    from harness.gate.command import run_gate
    from reports.tables import summary_frame

    from pathlib import Path

    # a real results.json, as compare wrote it (rows under seed 0)
    r = json.loads((Path(__file__).resolve().parent.parent / "measurements/cpu-smollm2-gate/results.json").read_text())
    assert r["statistics"]["bootstrap"] == {"seed": 0, "resamples": 4000, "confidence": 0.95}
    f = tmp_path / "results.json"
    f.write_text(json.dumps(r))
    policy = tmp_path / "p.toml"
    policy.write_text('policy_version = 1\n[bootstrap]\nseed = 7\nresamples = 1000\n[variants."gguf-q*"]\n'
                      'max_ppl_increase_pct = 10.0\nmax_kld_mean = 0.1\n')
    seen = {}
    import reports.html as page

    real = page.write_report
    page.write_report = lambda results, target, **kw: seen.setdefault("results", results) and real(results, target, **kw)
    try:
        run_gate(f, policy, console=lambda *a: seen.setdefault("console", []).append(a[0]))
    finally:
        page.write_report = real
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    shown = {(x["variant"], x["runtime"], x["metric"]): x for x in seen["results"]["rows"]}
    stored = {(x["variant"], x["runtime"], x["metric"]): x for x in r["rows"]}
    for d in verdict["rules"]:
        metric = {"max_ppl_increase_pct": "ppl_increase_pct", "max_kld_mean": "kld_mean"}[d["rule"]]
        key = (d["variant"], d["runtime"], metric)
        assert (shown[key]["value"], shown[key]["ci_low"], shown[key]["ci_high"]) == (d["estimate"], d["ci_low"], d["ci_high"])
        assert (stored[key]["ci_low"], stored[key]["ci_high"]) != (d["ci_low"], d["ci_high"])  # seed 0's would differ
    assert seen["results"]["statistics"]["bootstrap"] == {"seed": 7, "resamples": 1000, "confidence": 0.95}
    assert (tmp_path / "report.html").is_file(), seen["console"][-6:]
    html = (tmp_path / "report.html").read_text()
    assert "1000 resamples, seed 7" in html
    frame = summary_frame(seen["results"])
    cell = frame[(frame.variant == "gguf-q4_k_m") & (frame.runtime == "llama.cpp")].iloc[0]["ΔPPL vs fp16 [paired CI]"]
    assert re.sub(r"<[^>]+>", "", cell) in html


def test_kld_max_and_p999_are_printed_without_an_interval():
    """Descriptive only (issue 37): the report printed "1.85 [1.85, 1.85]" for the maximum; now a bare value, while
    p99 keeps its interval."""
    from harness.evidence import clusters, collect
    from harness.results_doc import quality_rows
    from reports.tables import kld_detail_frame

    r = make_results({"gguf-q4_k_m": {"ppl_shift": 0.05, "kld": 0.05}})
    rows = {x.metric: x for x in quality_rows(collect(r), clusters(r)) if x.variant == "gguf-q4_k_m"}
    for m in ("kld_max", "kld_p999"):
        assert rows[m].value > 0 and rows[m].ci_low is None and rows[m].ci_high is None
    assert rows["kld_p99"].ci_low is not None and rows["kld_p99"].ci_low < rows["kld_p99"].ci_high
    r["rows"] = [x.as_dict() for x in rows.values()] + r["rows"]
    frame = kld_detail_frame(r)
    if frame is not None:
        text = frame.to_string()
        assert f"{rows['kld_max'].value:.2f} [" not in text
