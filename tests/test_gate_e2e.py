"""End-to-end: more GGUF variants (an llama.cpp type, an imatrix one) on a tiny model, then the gate on
the real results.json, through `compare --gate` and `gate` alone."""
import json
import subprocess
import sys

import pytest

from tests.test_e2e import ROOT, compare


@pytest.mark.slow
def test_imatrix_variant_and_gate_on_a_tiny_run(tiny_llama, tmp_path):
    out = tmp_path / "run"
    policy = tmp_path / "policy.toml"
    policy.write_text('policy_version = 1\n[bootstrap]\nresamples = 1000\n[variants."gguf-f16"]\nmax_ppl_increase_pct = 1.0\n'
                      'max_kld_mean = 0.01\nmin_top1_agreement = 0.9\n[variants."gguf-q2_k*"]\nmax_bits_per_weight = 8\n'
                      'max_kld_mean = 0.000001\n')
    p = compare(tiny_llama, out, "--variants", "fp16,gguf-f16,gguf-q2_k-imatrix", "--tasks", "piqa",
                "--gate", str(policy))
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-3000:]  # q2_k's KLD cannot be under 1e-6: FAIL
    results = json.loads((out / "results.json").read_text())
    im = results["manifests"]["gguf-imatrix"]
    assert im["format"] == "imatrix" and len(im["recipe"]["sha256"]) == 64 and im["calibration_sha256"]
    q2 = results["manifests"]["gguf-q2_k-imatrix"]
    assert q2["recipe"]["imatrix"]["sha256"] == im["recipe"]["sha256"] and q2["tool"].endswith("--imatrix")
    v = json.loads((out / "verdict.json").read_text())
    assert v["verdict"] == "fail" and v["variants"] == {"gguf-f16": "pass", "gguf-q2_k-imatrix": "fail"}
    assert "Release gate: FAIL" in (out / "report.html").read_text()
    # per-document outcomes and per-token KLD made it into results.json
    task = next(t for t in results["task_cells"] if t["variant"] == "gguf-f16")
    assert len(task["scores"]["piqa"]["per_doc"]["acc"]) == 20
    cell = next(c for c in results["cells"] if c["variant"] == "gguf-q2_k-imatrix")
    assert len(cell["kld_per_token"]) == 3 and len(cell["kld_per_token"][0]) == 127  # 256-token windows
    # the gate alone, seconds on an existing results.json, same verdict; `report` keeps showing it
    g = subprocess.run([sys.executable, "-m", "harness.cli", "gate", str(out / "results.json"), "--policy", str(policy)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert g.returncode == 1 and "FAIL" in g.stdout
    r = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(out / "results.json")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Release gate: FAIL" in (out / "report.html").read_text()
