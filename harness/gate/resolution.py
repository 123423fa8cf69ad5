"""Can a rule decide at a run's counts? How wide each gate rule's 95% interval is at a count, and whether that is
narrow enough to tell a sound variant from a damaged one.

Each rule's half-width was measured once at reference counts: the widest of the default run's two 4-bit variants
(gguf-q4_k_m × llama.cpp and awq-int4 × transformers) in measurements/cpu-smollm2-long/ladder (48 windows, 200
documents per task, 64 generation prompts, one long window per length with 5 facts each, 64 instruction prompts).
An interval narrows as one over the square root of its resampling units, so the half-width at n units is
hw_ref · sqrt(n_ref / n).

A rule decides when that half-width is at most half the distance from no damage to its limit: then a variant with
at most half the limit's damage passes, and one with one and a half times it or more fails, whatever its draw.
The limit is the policy's where it names the rule, else the damage the rule was written to catch (its comment in
harness/gate/default-policy.toml)."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Resolution:
    unit: str  # what the interval resamples
    ref_count: int  # units at which ref_half_width was measured
    ref_half_width: float  # in the rule's own units
    damage: float  # the limit's distance from no damage, when no policy names it
    no_damage: float = 0.0  # the value of a variant identical to fp16


LADDER = "measurements/cpu-smollm2-long/ladder"
# rules that cannot decide at the release profile's counts because the published set has too few units: they stay
# out of the default policy (issue 37: a rule joins where its interval decides)
SET_BOUND = {"max_if_loose_drop_points": "IFBench has 276 prompts checkable offline; the loose drop needs 307"}
CHAT_POOL = 128  # chat questions shipped (data/generation/); text openings are as many as asked
RESOLUTIONS: dict[str, Resolution] = {
    "max_ppl_increase_pct": Resolution("windows", 48, 1.11, 10.0),
    "max_kld_mean": Resolution("windows", 48, 0.0069, 0.10),
    "max_kld_p99": Resolution("windows", 48, 0.114, 1.0),
    "min_top1_agreement": Resolution("windows", 48, 0.0089, 0.20, no_damage=1.0),
    "max_flip_rate": Resolution("documents per task", 200, 0.0375, 0.20),
    "max_acc_drop_points": Resolution("documents per task", 200, 4.0, 5.0),
    "max_loop_rate_increase": Resolution("generation prompts", 64, 10.94, 10.0),
    "max_degenerate_rate_increase": Resolution("generation prompts", 64, 10.94, 10.0),
    # the long rules' widths are the ladder's, resampled by block of one window (the unit then); resampled by
    # window (now) a run needs 5 windows a length for any interval, and these scale from the block figures
    "max_long_kld_mean_late": Resolution("long windows per length", 1, 0.0167, 0.10),
    "max_long_ppl_increase_pct_late": Resolution("long windows per length", 1, 2.82, 10.0),
    "max_long_kld_rise": Resolution("long windows per length", 1, 0.0238, 0.05),
    "max_needle_accuracy_drop": Resolution("planted facts", 20, 15.0, 10.0),
    # the two instruction rules' widths were measured on the home-made prompt set (before IFBench's became the
    # default); IFBench's are to be measured the same way
    "max_if_strict_drop_points": Resolution("instruction prompts", 64, 9.38, 10.0),
    "max_if_loose_drop_points": Resolution("instruction prompts", 64, 10.94, 10.0),
}


def counts(cfg: dict) -> dict[str, int]:
    """Resampling units of a run, from its configuration sections (results.json's `config`)."""
    from harness.long_probes import lengths_for

    ev, tasks = cfg.get("eval", {}), cfg.get("tasks", {})
    n_gen = int(ev.get("gen_prompts") or 0)
    lengths = len(lengths_for(int(ev.get("long_ctx") or 0))) if ev.get("long_ctx") else 0  # the model's cap aside
    return {
        "windows": int(ev.get("windows") or 0) or 10**6,  # 0: every window of the text
        "documents per task": (int(tasks.get("limit") or 0) or 10**6) if tasks.get("tasks") else 0,
        "generation prompts": min(n_gen, CHAT_POOL) + n_gen,  # chat questions (as many as the pool has) + openings
        "long windows per length": int(ev.get("long_windows") or 0) if ev.get("long_ctx") else 0,
        "planted facts": lengths * int(ev.get("long_windows") or 0) * int(ev.get("needles") or 0) if ev.get("long_ctx") else 0,
        "instruction prompts": int(ev.get("instructions") or 0),
    }


def _distance(rule: str, limit) -> float:
    r = RESOLUTIONS[rule]
    if isinstance(limit, dict):  # per task: the tightest
        limit = min(limit.values()) if limit else None
    if limit is None:
        return r.damage
    return abs(float(limit) - r.no_damage)


def decidability(cfg: dict, limits: dict | None = None) -> list[dict]:
    """One row per rule: its unit, the run's count of it, the expected half-width, the distance it must resolve
    (from the policy's limit or the stated damage), and whether it decides (None when the run does not measure it)."""
    n_of = counts(cfg)
    rows = []
    for rule, r in RESOLUTIONS.items():
        n = n_of[r.unit]
        limit = (limits or {}).get(rule)
        dist = _distance(rule, limit)
        hw = r.ref_half_width * math.sqrt(r.ref_count / n) if n else None
        need = math.ceil(r.ref_count * (r.ref_half_width / (dist / 2)) ** 2)
        rows.append({"rule": rule, "unit": r.unit, "count": n if n < 10**6 else "all", "half_width": hw,
                     "distance": dist, "limit_from": "policy" if limit is not None else "stated damage",
                     "decides": None if hw is None else hw <= dist / 2, "count_needed": need})
    return rows
