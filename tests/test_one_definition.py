"""One definition per quantity: the rows of results.json (which the report and the terminal table print)
and the gate's verdict give the same estimate and interval for the same quantity; that definition agrees with a
plain numpy computation written here from the definitions' text; and no second one hides in the source."""
import numpy as np
import pytest

from harness.evidence import collect
from harness.gate.policy import parse_policy
from harness.gate.rules import Gate
from harness.results_doc import quality_rows, task_rows
from tests.gate_fixtures import N_WINDOWS, make_results

POLICY = parse_policy('policy_version = 1\n[variants."*"]\nmax_ppl_increase_pct = 10.0\nmax_kld_mean = 0.1\n'
                      'max_kld_p99 = 1.0\nmax_kld_p90 = 2.0\nmin_top1_agreement = 0.8\n'
                      'max_acc_drop_points = { "*" = 10.0 }\n', "p")
RULE_ROW = {"max_ppl_increase_pct": "ppl_increase_pct", "max_kld_mean": "kld_mean", "max_kld_p99": "kld_p99",
            "max_kld_p90": "kld_p90", "min_top1_agreement": "top1_agreement"}


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


def _naive_bootstrap(per_unit_stat, clusters, n_units, boot):
    """A percentile bootstrap written out longhand: draw clusters with replacement (the same generator calls
    the harness makes), expand them to their units, and compute the statistic on the expanded units."""
    rng = np.random.default_rng(boot.seed)
    ids = np.unique(clusters, return_inverse=True)[1].reshape(-1)
    k = ids.max() + 1
    members = [np.flatnonzero(ids == c) for c in range(k)]
    vals = []
    for _ in range(boot.resamples):
        counts = rng.multinomial(k, np.full(k, 1.0 / k))
        units = np.concatenate([np.repeat(members[c], counts[c]) for c in range(k)])
        vals.append(per_unit_stat(units))
    a = 100 * (1 - boot.level) / 2
    return per_unit_stat(np.arange(n_units)), *np.percentile(vals, [a, 100 - a])


def test_the_definitions_agree_with_plain_numpy():
    from evaluators.stats import Bootstrap
    from harness import metrics as M
    from harness.evidence import CellEvidence

    rng = np.random.default_rng(3)
    n, t = 24, 16
    clusters = np.repeat(np.arange(8), 3)
    ref, cell = CellEvidence("fp16", "transformers", "ok"), CellEvidence("gguf-q4_k_m", "llama.cpp", "ok")
    ref.window_nll = 3 + 0.3 * rng.standard_normal(n)
    cell.window_nll = ref.window_nll + 0.05 + 0.02 * rng.standard_normal(n)
    cell.kld_tokens = rng.gamma(1.0, 0.05, size=(n, t))
    cell.top1_window = rng.uniform(0.8, 0.95, n)
    boot = Bootstrap(seed=5, resamples=300)
    plain = {
        M.PPL_INCREASE: lambda u: 100 * (np.exp(np.mean(cell.window_nll[u] - ref.window_nll[u])) - 1),
        M.KLD_MEAN: lambda u: np.mean(cell.kld_tokens[u]),
        M.KLD_P99: lambda u: np.percentile(cell.kld_tokens[u].reshape(-1), 99),
        M.TOP1: lambda u: np.mean(cell.top1_window[u]),
    }
    for q, f in plain.items():
        e = M.estimate(q, cell, ref, clusters, boot)
        assert (e.value, e.ci_low, e.ci_high) == pytest.approx(_naive_bootstrap(f, clusters, n, boot), rel=1e-9), q.metric
    assert M.ppl(ref.window_nll) == pytest.approx(np.exp(np.mean(ref.window_nll)), rel=1e-12)
    curve = M.kld_curve(cell)
    assert curve == pytest.approx(np.percentile(cell.kld_tokens.reshape(-1), np.arange(101)), rel=1e-12)
    assert curve[99] == M.estimate(M.KLD_P99, cell, ref, clusters, boot).value


def test_the_survival_curve_is_the_identical_after_t_quantity():
    from harness import generation as G
    from harness import generation_metrics as GM
    from tests.gate_fixtures import make_results

    r = make_results({"gguf-q4_k_m": {"ppl_shift": 0.01, "kld": 0.01, "drift": 0.4}})
    ev = collect(r)
    cell, ref = ev[("gguf-q4_k_m", "llama.cpp")], ev[("fp16", "transformers")]
    div = G.divergences(cell.generation, ref.generation, cell.gen_n_new)
    curve = G.survival(div, cell.gen_n_new)
    for t, q in GM.IDENTICAL_AT.items():
        if t <= cell.gen_n_new:
            assert curve[t] == M_estimate(q, cell, ref).value
    cell.gen_n_new = 8  # fewer tokens than 16: identical-after-16 is not measured, not 0%
    with pytest.raises(Exception, match="generated only 8 tokens"):
        M_estimate(GM.IDENTICAL_AT[16], cell, ref)


def M_estimate(q, cell, ref):
    from harness import metrics as M

    return M.estimate(q, cell, ref)


def test_no_second_definition_in_the_source():
    """PPL, percentiles, intervals and survival are computed in harness/metrics.py, harness/generation.py and
    evaluators/stats.py only; the rest of harness/ and reports/ read them."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    allowed = {"harness/metrics.py", "harness/generation.py", "evaluators/stats.py"}
    patterns = {r"np\.exp\(\s*np\.mean|np\.exp\([^)]*\.mean\(": "exp of a mean (PPL)",
                r"np\.percentile\(|np\.quantile\(|np\.median\(": "a percentile", r"1\.96": "a normal interval",
                r"\(\w+ >= \w+\)\.mean\(\)": "a survival share"}
    found = []
    for pkg in ("harness", "reports"):
        for f in sorted((root / pkg).rglob("*.py")):
            rel = f.relative_to(root).as_posix()
            if rel in allowed:
                continue
            for pat, what in patterns.items():
                for m in re.finditer(pat, f.read_text()):
                    found.append(f"{rel}: {what} ({m.group(0)})")
    assert not found, "\n".join(found)


def test_a_lower_delta_p_percentile_is_worse():
    """Δp = p(right token) − fp16's: its low percentiles are the damage tail, so a run whose p1 fell got worse."""
    from harness import metrics as M
    from harness.evidence import CellEvidence

    rng = np.random.default_rng(0)
    ref = CellEvidence("fp16", "transformers", "ok")
    ref.nll_tokens = rng.uniform(0.5, 3.0, size=(20, 16))
    good, bad = CellEvidence("a", "llama.cpp", "ok"), CellEvidence("a", "llama.cpp", "ok")
    good.nll_tokens = ref.nll_tokens + 0.01
    bad.nll_tokens = ref.nll_tokens + rng.choice([0.0, 2.0], p=[0.9, 0.1], size=ref.nll_tokens.shape)
    for q in M.DELTA_P_PCTS.values():
        assert not q.higher_is_worse, q.metric
    worse = M.change(M.DELTA_P_PCTS[1], (bad, ref), (good, ref))
    assert worse.value > 0  # positive: worse, as every change() reads
