"""One definition per quantity: the rows of results.json (which the report and the terminal table print)
and the gate's verdict give the same estimate and interval for the same quantity."""
import numpy as np
import pytest

from harness.evidence import collect
from harness.gate.policy import parse_policy
from harness.gate.rules import Gate
from harness.results_doc import quality_rows, task_rows
from tests.gate_fixtures import N_WINDOWS, make_results

POLICY = parse_policy('policy_version = 1\n[variants."*"]\nmax_ppl_increase_pct = 10.0\nmax_kld_mean = 0.1\n'
                      'max_kld_p99 = 1.0\nmax_kld_p999 = 2.0\nmin_top1_agreement = 0.8\n'
                      'max_acc_drop_points = { "*" = 10.0 }\n', "p")
RULE_ROW = {"max_ppl_increase_pct": "ppl_increase_pct", "max_kld_mean": "kld_mean", "max_kld_p99": "kld_p99",
            "max_kld_p999": "kld_p999", "min_top1_agreement": "top1_agreement"}


def test_rows_and_gate_share_every_interval():
    r = make_results({"gguf-q4_k_m": {"ppl_shift": 0.03, "kld": 0.05, "flips": 0.05},
                      "awq-int4": {"ppl_shift": 0.02, "kld": 0.04, "flips": 0.03, "runtime": "transformers"}})
    r["windows"]["clusters"] = list(np.repeat(np.arange(N_WINDOWS // 2), 2))  # two windows per article
    r["windows"]["cluster_kind"] = "article"
    for c in r["cells"]:
        c["nll_per_token"] = (np.asarray(c["window_nll"])[:, None] + np.zeros((1, 8))).tolist()
    ev = collect(r)
    rows = {(x.variant, x.runtime, x.metric): x for x in quality_rows(ev, r["windows"]["clusters"])}
    scores = {(t["variant"], t["runtime"]): t["scores"] for t in r["task_cells"]}
    rows.update({(x.variant, x.runtime, x.metric): x for x in task_rows(ev, scores)})
    decisions = Gate(r, POLICY).run()
    checked = 0
    for d in decisions:
        if d.rule in RULE_ROW:
            row = rows[(d.variant, d.runtime, RULE_ROW[d.rule])]
            assert (d.estimate, d.ci_low, d.ci_high) == (row.value, row.ci_low, row.ci_high), d.rule
            assert "by article" in d.method
            checked += 1
        elif d.rule.startswith("max_acc_drop_points["):
            task_metric = d.rule[len("max_acc_drop_points["):-1]
            row = rows[(d.variant, d.runtime, f"{task_metric}_delta_vs_fp16")]
            assert d.estimate == pytest.approx(-100 * row.value)
            assert (d.ci_low, d.ci_high) == pytest.approx((-100 * row.ci_high, -100 * row.ci_low))
            checked += 1
    assert checked == 2 * (len(RULE_ROW) + 1)


def test_terminal_table_prints_the_rows_as_the_report_does():
    from reports.tables import summary_frame, terminal_table

    r = make_results({"gguf-q4_k_m": {"ppl_shift": 0.03, "kld": 0.05}})
    r["rows"] += [x.as_dict() for x in quality_rows(collect(r), None)]
    text, frame = terminal_table(r), summary_frame(r)
    cell = frame[frame.variant == "gguf-q4_k_m"].iloc[0]
    assert cell["ΔPPL vs fp16 [paired CI]"] in text and cell["KLD mean [CI]"] in text
