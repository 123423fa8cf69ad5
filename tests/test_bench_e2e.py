"""`quantcompare bench` end to end on a tiny model: the harness and llama.cpp's own tools
(built by `make tools`) score the same chunks; their perplexities must agree."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".cache" / "llama.cpp-build" / "bin"


@pytest.mark.slow
def test_bench_tiny_llama(tiny_llama, tmp_path):
    if not (TOOLS / "llama-perplexity").is_file():
        pytest.fail("llama.cpp tools missing: run `make tools`")
    # a compare first: the bench then builds no variant (one shared store per machine)
    from tests.test_e2e import compare

    store = tmp_path / "store"
    c = compare(tiny_llama, tmp_path / "run", "--variants", "fp16,gguf-q4_k_m", "--tasks", "none", store=store)
    assert c.returncode == 0, c.stdout[-2000:] + c.stderr[-2000:]
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "harness.cli", "bench", "--model", str(tiny_llama), "--out", str(out),
           "--tools", str(TOOLS), "--windows", "4", "--n-ctx", "256", "--prefill-tokens", "128", "--decode-tokens", "32", "--rounds", "1"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200, env=dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(store)))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "building" not in p.stdout and p.stdout.count("cached artifact reused") == 3
    assert p.stdout.strip().splitlines()[-2].startswith("BENCH ")
    b = json.loads((out / "bench.json").read_text())
    assert set(b) >= {"perplexity", "kld", "prefill", "decode", "roofline"}
    assert abs(b["perplexity"]["ppl_diff_pct"]) < 0.1
    assert abs(b["perplexity"]["f16_harness_ppl"] / b["perplexity"]["f16_llama_perplexity_ppl"] - 1) < 1e-3
    assert b["kld"]["llama_perplexity_kld_mean"] >= 0 and b["kld"]["harness_kld_mean"] >= 0
    # whole-vocabulary reference (the bench's default): the same KLD and same-top rate as llama-perplexity
    assert abs(b["kld"]["kld_mean_rel_diff_pct"]) < 2.0 and abs(b["kld"]["same_top_diff_pts"]) < 0.5
    stats = b["kld"]["statistics"]  # llama-perplexity's whole set, read from its output and computed by the harness
    assert {"kld_median", "kld_p99", "kld_p999", "kld_max", "delta_p_rms", "cor_ln_ppl"} <= set(stats)
    assert all(d["harness"] is not None and d["llama_perplexity"] is not None for d in stats.values())
    for what in ("prefill", "decode"):
        for d in b[what].values():
            assert d["harness_tok_s"] > 0 and d["llama_bench_tok_s"] > 0
    assert b["roofline"]["bandwidth"]["gb_s"] > 0
