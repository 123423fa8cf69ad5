"""Parsers for llama.cpp's tool output (formats as printed by the vendored tools/perplexity and llama-bench)."""
import pytest

from harness.llama_tool_output import parse_kld, parse_llama_bench, parse_perplexity
from core.errors import UserError

PPL_OUT = """[1]50253.6534,[2]46887.1243,[3]48185.0918,[4]47733.5377,
0.00.437.595 I perplexity: tokenizing the input ..
0.01.876.037 I perplexity: tokenization took 1438.42 ms
0.01.876.617 I perplexity: calculating perplexity over 4 chunks, n_ctx=256, batch_size=256, n_seq=1
0.02.009.225 I perplexity: 0.13 seconds per pass - ETA 0.02.489.965 I Final estimate: PPL = 47733.5377 +/- 912.06606
"""

KLD_OUT = """====== Perplexity statistics ======
Mean PPL(Q)                   :  25.029282 ±   0.812150
Mean PPL(base)                :  23.612940 ±   0.765432
Cor(ln(PPL(Q)), ln(PPL(base))):  98.12%
Mean ln(PPL(Q)/PPL(base))     :   0.051190 ±   0.002345
Mean PPL(Q)/PPL(base)         :   1.059978 ±   0.003812
Mean PPL(Q)-PPL(base)         :   1.416342 ±   0.062000

====== KL divergence statistics ======
Mean    KLD:   0.051734 ±   0.000812
Maximum KLD:   4.123456
99.9%   KLD:   2.345678
99.0%   KLD:   0.543210
95.0%   KLD:   0.187654
90.0%   KLD:   0.111111
Median  KLD:   0.021234
10.0%   KLD:   0.000456
 5.0%   KLD:   0.000123
 1.0%   KLD:   0.000012
 0.1%   KLD:  -0.000001
Minimum KLD:  -0.000004

====== Token probability statistics ======
Mean    Δp: -0.412 ± 0.061 %
Maximum Δp: 65.432%
99.9%   Δp: 34.567%
99.0%   Δp: 14.321%
95.0%   Δp:  5.432%
90.0%   Δp:  2.345%
75.0%   Δp:  0.321%
Median  Δp: -0.001%
25.0%   Δp: -0.456%
10.0%   Δp: -3.210%
 5.0%   Δp: -6.543%
 1.0%   Δp: -17.654%
 0.1%   Δp: -38.765%
Minimum Δp: -78.901%
RMS Δp    :  5.678 ± 0.123 %
Same top p: 86.307 ± 0.311 %
"""

BENCH_OUT = """[
  {"build_commit": "abc", "n_prompt": 512, "n_gen": 0, "avg_ts": 790.5, "stddev_ts": 4.1},
  {"build_commit": "abc", "n_prompt": 0, "n_gen": 128, "avg_ts": 44.2, "stddev_ts": 0.3}
]
"""


def test_parse_perplexity():
    r = parse_perplexity(PPL_OUT)
    assert r["ppl"] == 47733.5377
    assert abs(r["pass_s"] - 0.613348) < 1e-6 and abs(r["tok_s"] - 1024 / 0.613348) < 1e-3


def test_parse_kld():
    r = parse_kld(KLD_OUT)
    assert r == pytest.approx({
        "kld_mean": 0.051734, "kld_median": 0.021234, "kld_p90": 0.111111, "kld_p99": 0.543210, "kld_p999": 2.345678,
        "kld_max": 4.123456, "top1_agreement": 0.86307, "same_top_pct": 86.307, "delta_p_mean": -0.00412,
        "delta_p_rms": 0.05678, "delta_p_p1": -0.17654, "delta_p_p99": 0.14321, "cor_ln_ppl": 0.9812,
        "ppl_q": 25.029282})


def test_parse_llama_bench():
    r = parse_llama_bench("build: stuff\n" + BENCH_OUT)
    assert r["pp"] == {"n": 512, "tok_s": 790.5, "stddev": 4.1}
    assert r["tg"]["n"] == 128 and r["tg"]["tok_s"] == 44.2


def test_missing_numbers_are_a_clear_error():
    with pytest.raises(UserError, match="final PPL"):
        parse_perplexity("nothing here")
    with pytest.raises(UserError, match="timing"):
        parse_perplexity("Final estimate: PPL = 3.0 +/- 0.1")
