"""Parsers for llama.cpp's tool output (formats as printed by the vendored tools/perplexity and llama-bench)."""
import pytest

from harness.bench import parse_kld, parse_llama_bench, parse_perplexity
from harness.errors import UserError

PPL_OUT = """perplexity: calculating perplexity over 48 chunks, n_ctx=512, batch_size=512, n_seq=1
[1]19.1452,[2]22.0016,[3]23.3151,
Final estimate: PPL = 25.0293 +/- 0.81215
llama_perf_context_print:        load time =     120.10 ms
llama_perf_context_print: prompt eval time =   29341.04 ms / 24576 tokens (    1.19 ms per token,   837.60 tokens per second)
"""

KLD_OUT = """====== Perplexity statistics ======
Mean PPL(Q)                   :  25.029282 ±   0.812150
Mean PPL(base)                :  23.612940 ±   0.765432
Mean PPL(Q)/PPL(base)         :   1.059978 ±   0.003812
====== KL divergence statistics ======
Mean    KLD:   0.051734 ±   0.000812
Maximum KLD:   4.123456
====== Token probability statistics ======
Same top p: 86.307 ± 0.311 %
"""

BENCH_OUT = """[
  {"build_commit": "abc", "n_prompt": 512, "n_gen": 0, "avg_ts": 790.5, "stddev_ts": 4.1},
  {"build_commit": "abc", "n_prompt": 0, "n_gen": 128, "avg_ts": 44.2, "stddev_ts": 0.3}
]
"""


def test_parse_perplexity():
    assert parse_perplexity(PPL_OUT) == {"ppl": 25.0293, "tok_s": 837.60}


def test_parse_kld():
    r = parse_kld(KLD_OUT)
    assert r == {"kld_mean": 0.051734, "same_top_pct": 86.307, "ppl_q": 25.029282}


def test_parse_llama_bench():
    r = parse_llama_bench("build: stuff\n" + BENCH_OUT)
    assert r["pp"] == {"n": 512, "tok_s": 790.5, "stddev": 4.1}
    assert r["tg"]["n"] == 128 and r["tg"]["tok_s"] == 44.2


def test_missing_numbers_are_a_clear_error():
    with pytest.raises(UserError, match="final PPL"):
        parse_perplexity("nothing here")
