"""The default policy on the default model's archived run (measurements/cpu-smollm2-gate/results.json): the run
the noise floor in the README was read from, so this is a regression check of the gate on it, not a check of
the limits (tests/test_default_policy.py checks them on runs they were not set from). No false alarm for the same
weights on another runtime, Q4_K_M passes and Q2_K fails, whatever the bootstrap seed."""
from pathlib import Path

import pytest

from evaluators.stats import Bootstrap
from harness.evidence import load_results
from harness.gate.policy import load_policy
from harness.gate.rules import Gate
from harness.gate.verdict import per_variant

RESULTS = Path(__file__).resolve().parent.parent / "measurements" / "cpu-smollm2-gate" / "results.json"


@pytest.mark.slow
def test_default_policy_on_the_default_model_for_5_seeds():
    results = load_results(RESULTS)
    keep = {"fp16", "gguf-f16", "gguf-q4_k_m", "gguf-q2_k"}
    results["cells"] = [c for c in results["cells"] if c["variant"] in keep]
    results["task_cells"] = [c for c in results["task_cells"] if c["variant"] in keep]
    policy = load_policy(None)
    for seed in range(5):
        ds = Gate(results, policy, boot=Bootstrap(seed, policy.resamples, policy.confidence)).run()
        verdicts = per_variant(ds, policy.on_inconclusive)
        assert verdicts == {"gguf-f16": "pass", "gguf-q4_k_m": "pass", "gguf-q2_k": "fail"}, (seed, verdicts)
        assert all(d.decision == "pass" for d in ds if d.variant == "gguf-f16")
