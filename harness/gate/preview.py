"""What the shipped default policy says of a run that no gate has read: the report's ship preview and the
limits its plots draw. Errors are not swallowed here: a preview that cannot be made is a bug to see."""
from __future__ import annotations

from harness.gate.policy import load_policy
from harness.gate.rules import Gate
from harness.gate.ship import recommend
from harness.gate.verdict import per_variant


def default_ship(results: dict) -> dict | None:
    """What the default policy would ship from these results; None for a performance-only run (synthetic
    weights), whose quality was not measured."""
    if (results.get("source") or {}).get("origin") == "synthetic":
        return None
    policy = load_policy(None)
    decisions = Gate(results, policy).run()
    verdicts = per_variant(decisions, policy.on_inconclusive)
    return {**recommend(results, verdicts, decisions, policy.limits_for("*")[0].get("decode_runtime")),
            "variants": verdicts}


def default_limits() -> dict:
    """The default policy's limits for every variant ("*"): what the report draws without a verdict."""
    return load_policy(None).limits_for("*")[0]
