"""`quantcompare sensitivity` and a gguf-mix variant on a tiny model, end to end: probes built by llama-quantize,
scored against fp16, the heat map drawn; the mix no larger than its target, built from a tensor-type file,
evaluated and gated like any variant."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--windows", "2", "--n-ctx", "128", "--tasks", "none", "--gen-prompts", "2", "--gen-tokens", "8", "--instructions", "0",
         "--speed-repeats", "1", "--prefill-tokens", "16", "--decode-tokens", "4"]


def _run(args, store: Path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(store))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=1500)


@pytest.mark.slow
def test_sensitivity_then_a_mix(tiny_llama, tmp_path):
    store = tmp_path / "store"
    p = _run(["sensitivity", "--model", str(tiny_llama), "--out", str(tmp_path / "sens"), "--n-ctx", "128"], store)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads((tmp_path / "sens" / "sensitivity.json").read_text())
    groups = {g["group"]: g for g in doc["groups"]}
    assert {"token_embd", "blk0-attn", "blk0-ffn", "blk1-attn", "blk1-ffn"} <= set(groups)
    for g in groups.values():
        lo, hi = g["kld_increase"][1], g["kld_increase"][2]
        assert lo <= g["kld_increase"][0] <= hi
    assert (tmp_path / "sens" / "sensitivity.png").stat().st_size > 10_000
    out = tmp_path / "run"
    p = _run(["compare", "--model", str(tiny_llama), "--out", str(out), "--variants", "fp16,gguf-q5_0,gguf-mix@gguf-q5_0",
              *SMALL, "--gate", "default"], store)
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "cached result reused" in p.stdout  # the probes' cells from the sensitivity run
    results = json.loads((out / "results.json").read_text())
    m = results["manifests"]["gguf-mix@gguf-q5_0"]
    target = results["manifests"]["gguf-q5_0"]["size_bytes"]
    assert 0.8 * target <= m["size_bytes"] <= target  # the budget is spent, and not overspent
    assert m["recipe"]["sensitivity_sha256"] and m["recipe"]["groups"]
    cell = next(c for c in results["cells"] if c["variant"] == "gguf-mix@gguf-q5_0")
    assert cell["status"] == "ok", [f for f in results["flags"] if f["variant"] == "gguf-mix@gguf-q5_0"]
    assert all("kld_increase" in g for g in results["sensitivity"]["groups"])  # every group measured
    verdict = json.loads((out / "verdict.json").read_text())
    assert p.returncode == verdict["exit_code"], (p.returncode, verdict["verdict"])  # the exit is the verdict's
    window_rules = {"max_ppl_increase_pct", "max_kld_mean", "max_kld_p99", "min_top1_agreement"}
    rules = [r for r in verdict["rules"] if r["variant"] == "gguf-mix@gguf-q5_0" and r["rule"] in window_rules]
    assert {r["rule"] for r in rules} == window_rules
    assert not [r for r in rules if r["estimate"] is None], rules  # gated on measurements, none missing
    assert "gguf-mix@gguf-q5_0" in verdict["variants"] and verdict["ship"]["summary"]
