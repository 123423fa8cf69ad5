"""Damage perplexity misses: a runtime whose scores are fp16's own (so its PPL rule passes) but whose greedy
generations fall into a loop. The run flags nothing, the gate fails it on the generation rule."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.registry import register_runtime
from evaluators.backends.transformers_backend import TransformersRuntime

ROOT = Path(__file__).resolve().parent.parent


@register_runtime("looping", formats=("hf-safetensors",), summary="a test runtime: fp16's logits, generations that loop")
class LoopingRuntime(TransformersRuntime):
    """transformers' scores, unchanged; its greedy continuations repeat their first three tokens."""

    @classmethod
    def from_spec(cls, spec, options) -> "LoopingRuntime":
        return cls(device=spec.device)

    def generate_many(self, prompts: list[list[int]], n_new: int) -> list[list[int]]:
        real = super().generate_many(prompts, min(3, n_new))
        return [(r * n_new)[:n_new] for r in real]


@pytest.mark.slow
def test_gate_fails_a_looping_runtime_whose_perplexity_passes(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(tmp_path / "store"))
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "harness.cli", "compare", "--out", str(out), "--variants", "fp16",
                        "--runtimes", "transformers,looping", "--plugins", "tests.test_generation_gate", "--tasks", "none",
                        "--windows", "2", "--n-ctx", "128", "--prefill-tokens", "16", "--decode-tokens", "4",
                        "--speed-repeats", "1", "--gen-prompts", "6", "--gen-tokens", "32", "--instructions", "0"],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = {(r["runtime"], r["metric"]): r for r in results["rows"] if r["variant"] == "fp16"}
    assert rows[("looping", "ppl_increase_pct")]["value"] == pytest.approx(0.0, abs=1e-9)
    assert rows[("looping", "gen_loop_rate")]["value"] == 1.0
    assert rows[("transformers", "gen_loop_rate")]["value"] < 0.5
    assert rows[("looping", "gen_identical_at_32")]["value"] < 1.0
    loop_cell = next(c for c in results["cells"] if c["runtime"] == "looping")
    assert all("loop" in k for k in loop_cell["generation"]["degenerate"])
    html = (out / "report.html").read_text()
    assert "Greedy generations vs fp16" in html and "LOOP" in html
    policy = tmp_path / "policy.toml"
    policy.write_text('policy_version = 1\n[variants."*"]\nmax_ppl_increase_pct = 10.0\nmax_loop_rate_increase = 10.0\n')
    g = subprocess.run([sys.executable, "-m", "harness.cli", "gate", str(out / "results.json"), "--policy", str(policy)],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert g.returncode == 1, g.stdout[-2000:] + g.stderr[-2000:]
    verdict = json.loads((out / "verdict.json").read_text())
    decisions = {d["rule"]: d["decision"] for d in verdict["rules"] if d["runtime"] == "looping"}
    assert decisions == {"max_ppl_increase_pct": "pass", "max_loop_rate_increase": "fail"}, verdict["rules"]
