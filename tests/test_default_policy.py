"""The default policy on runs its limits were not set from (README: how the default policy was set): the default
model scored on other windows and other generation prompts (measurements/cpu-smollm2-seeds, one run per seed,
made after the limits were committed). On every one, at the default counts, fp16's own weights on another
runtime (gguf-f16) pass and Q2_K fails, whatever the bootstrap seed."""
import json
from pathlib import Path

import pytest

from evaluators.stats import Bootstrap
from harness.evidence import load_results
from harness.gate.policy import load_policy
from harness.gate.rules import Gate
from harness.gate.verdict import per_variant

SEEDS = Path(__file__).resolve().parent.parent / "measurements" / "cpu-smollm2-seeds"
RUNS = sorted(SEEDS.glob("seed-*/results.json"))


def test_there_are_independent_runs_at_the_default_counts():
    assert len(RUNS) >= 2, RUNS
    seeds = set()
    for f in RUNS:
        r = json.loads(f.read_text())
        ev = r["config"]["eval"]
        # the counts the policy was set at (the defaults before profiles; the quick profile keeps the 48 windows)
        assert (ev["windows"], ev["gen_prompts"], r["config"]["tasks"]["limit"]) == (48, 32, 200)
        assert ev["window_seed"] != 0 and ev["gen_seed"] != 0  # not the run the floor was read from
        seeds.add((ev["window_seed"], ev["gen_seed"]))
    assert len(seeds) == len(RUNS)


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.parent.name)
def test_gguf_f16_passes_and_q2_k_fails(run):
    results = load_results(run)
    policy = load_policy(None)
    for seed in range(5):
        ds = Gate(results, policy, boot=Bootstrap(seed, policy.resamples, policy.confidence)).run()
        verdicts = per_variant(ds, policy.on_inconclusive)
        assert verdicts["gguf-f16"] == "pass" and verdicts["gguf-q2_k"] == "fail", (seed, verdicts)
        assert all(d.decision == "pass" for d in ds if d.variant == "gguf-f16")
        # Q2_K fails on measured damage, not on a missing measurement
        assert any(d.decision == "fail" and d.estimate is not None for d in ds if d.variant == "gguf-q2_k")
