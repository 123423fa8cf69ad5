"""What to ship (harness/gate/ship.py): the smallest passing variant, the fastest on the chosen runtime, the
closest when none passes, and every figure from the chosen runtime's own rows."""
from harness.gate.decision import Decision
from harness.gate.ship import recommend


def _rows(spec: dict) -> dict:
    """spec: variant -> {"size": bytes, runtime: (ΔPPL, decode tok/s or None), ...}"""
    rows = []
    for v, d in spec.items():
        rows.append({"variant": v, "runtime": "transformers", "metric": "size_bytes", "value": d["size"]})
        for rt, measured in d.items():
            if rt == "size":
                continue
            dppl, tok_s = measured
            if dppl is not None:
                rows.append({"variant": v, "runtime": rt, "metric": "ppl_increase_pct", "value": dppl,
                             "ci_low": dppl - 0.5, "ci_high": dppl + 0.5})
            if tok_s is not None:
                rows.append({"variant": v, "runtime": rt, "metric": "decode_tok_s", "value": tok_s})
    return {"rows": rows}


def _dec(variant, rule, decision):
    return Decision(variant, "llama.cpp", rule, "m", "<=", 1.0, 0.5, 0.4, 0.6, decision, "", "", "fp16")


RESULTS = _rows({
    "fp16": {"size": 270e6, "transformers": (None, 20.0), "llama.cpp": (None, None)},
    "gguf-f16": {"size": 271e6, "llama.cpp": (0.0, 60.0)},
    "gguf-q8_0": {"size": 145e6, "llama.cpp": (0.4, 110.0)},
    "gguf-q4_k_m": {"size": 105e6, "llama.cpp": (5.7, 135.0)},
    "gguf-q2_k": {"size": 88e6, "llama.cpp": (43.0, 150.0)},
    "awq-int4": {"size": 110e6, "transformers": (15.7, 30.0)},
})


def test_the_smallest_passing_variant_is_shipped_not_a_smaller_failing_one():
    verdicts = {"gguf-f16": "pass", "gguf-q8_0": "pass", "gguf-q4_k_m": "pass", "gguf-q2_k": "fail", "awq-int4": "fail"}
    out = recommend(RESULTS, verdicts, [], "llama.cpp")
    assert out["smallest"]["variant"] == "gguf-q4_k_m"
    assert out["smallest"]["ppl_increase_pct"] == [5.7, 5.2, 6.2] and out["smallest"]["runtime"] == "llama.cpp"
    assert out["fastest"]["variant"] == "gguf-q4_k_m"  # also the fastest passing one: named once
    assert out["summary"] == "ship: gguf-q4_k_m, 105.0 MB, ΔPPL +5.7% [+5.2, +6.2] on llama.cpp, 135.0 tok/s decode"
    assert out["closest"] is None


def test_the_fastest_passing_variant_on_the_chosen_runtime_is_named_beside_the_smallest():
    rows = _rows({"gguf-q8_0": {"size": 145e6, "llama.cpp": (0.4, 160.0)},
                  "gguf-q4_k_m": {"size": 105e6, "llama.cpp": (5.7, 135.0)}})
    out = recommend(rows, {"gguf-q8_0": "pass", "gguf-q4_k_m": "pass"}, [], "llama.cpp")
    assert (out["smallest"]["variant"], out["fastest"]["variant"]) == ("gguf-q4_k_m", "gguf-q8_0")
    assert out["summary"].endswith("; fastest on llama.cpp: gguf-q8_0, 145.0 MB, ΔPPL +0.4% [-0.1, +0.9] on "
                                   "llama.cpp, 160.0 tok/s decode")


def test_fp16_is_never_a_candidate():
    out = recommend(RESULTS, {"fp16": "pass", "gguf-q2_k": "fail"}, [_dec("gguf-q2_k", "max_kld_mean", "fail")],
                    "llama.cpp")
    assert out["smallest"] is None and out["closest"]["variant"] == "gguf-q2_k"


def test_a_figure_comes_from_the_chosen_runtime_or_says_it_was_not_measured_there():
    out = recommend(RESULTS, {"awq-int4": "pass", "gguf-q2_k": "fail"}, [], "llama.cpp")
    e = out["smallest"]
    assert e["variant"] == "awq-int4" and e["ppl_increase_pct"] is None and e["decode_tok_s"] is None
    assert "ΔPPL not measured on llama.cpp" in e["text"] and "15.7" not in e["text"]
    e = recommend(RESULTS, {"awq-int4": "pass"}, [], "transformers")["smallest"]
    assert e["ppl_increase_pct"] == [15.7, 15.2, 16.2] and "on transformers" in e["text"]


def test_when_nothing_passes_the_closest_fails_the_fewest_rules():
    verdicts = {"gguf-q4_k_m": "fail", "gguf-q2_k": "fail", "awq-int4": "fail"}
    ds = [_dec("gguf-q4_k_m", "max_kld_mean", "fail"), _dec("gguf-q4_k_m", "max_kld_p99", "fail"),
          _dec("gguf-q2_k", "max_kld_mean", "fail"), _dec("gguf-q2_k", "min_top1_agreement", "inconclusive"),
          _dec("awq-int4", "max_kld_mean", "fail"), _dec("awq-int4", "max_ppl_increase_pct", "pass")]
    out = recommend(RESULTS, verdicts, ds, "llama.cpp")
    # q2_k and awq fail one rule each; awq has no inconclusive one
    assert out["smallest"] is None and out["closest"]["variant"] == "awq-int4"
    assert out["closest"]["not_passed"] == ["max_kld_mean"]
    assert out["summary"].startswith("nothing passes; the closest is awq-int4")
    # equal shortfalls: the lower ΔPPL on the chosen runtime decides
    ds = [_dec("gguf-q4_k_m", "max_kld_mean", "fail"), _dec("gguf-q2_k", "max_kld_mean", "fail")]
    out = recommend(RESULTS, {"gguf-q4_k_m": "fail", "gguf-q2_k": "fail"}, ds, "llama.cpp")
    assert out["closest"]["variant"] == "gguf-q4_k_m"


def test_the_runtime_defaults_to_the_one_that_timed_the_most_variants():
    out = recommend(RESULTS, {"gguf-q8_0": "pass"}, [], None)
    assert out["runtime"] == "llama.cpp"


def test_nothing_gated_but_fp16():
    out = recommend(RESULTS, {}, [], "llama.cpp")
    assert out["summary"] == "nothing to ship: no variant besides fp16 was gated"
