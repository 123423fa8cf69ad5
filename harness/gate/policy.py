"""Gate policies: TOML files (policy_version = 1) with limits per variant name or glob.

Several tables may match one variant: they apply in file order, later keys overriding earlier ones,
so `[variants."*"]` sets the defaults and `[variants."gguf-q2_k*"]` can relax or tighten them."""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path

from core.registry import is_variant
from core.errors import UserError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

POLICY_VERSION = 1
DEFAULT_POLICY = Path(__file__).with_name("default-policy.toml")
ON_INCONCLUSIVE = ("fail", "inconclusive", "pass")

# limit -> (direction, what it bounds); "max": the estimate must stay at or under the limit
LIMITS = {
    "max_ppl_increase_pct": ("max", "PPL increase vs fp16, % (paired over windows)"),
    "max_kld_mean": ("max", "mean KL divergence vs fp16, nats"),
    "max_kld_median": ("max", "median of per-token KL divergence vs fp16, nats"),
    "max_kld_p90": ("max", "90th percentile of per-token KL divergence vs fp16, nats"),
    "max_kld_p99": ("max", "99th percentile of per-token KL divergence vs fp16, nats"),
    "min_top1_agreement": ("min", "top-1 agreement with fp16 (fraction of scored tokens)"),
    "max_delta_p_rms": ("max", "RMS of Δp, the next token's probability minus fp16's (fraction)"),
    "min_cor_ln_ppl": ("min", "correlation of per-token ln PPL with fp16's"),
    "max_acc_drop_points": ("max", "accuracy drop vs fp16 per task, points (paired over documents)"),
    "max_flip_rate": ("max", "share of documents whose right/wrong outcome changed vs fp16"),
    "max_loop_rate_increase": ("max", "loop rate of greedy generations minus fp16's, points (paired over prompts)"),
    "max_degenerate_rate_increase": ("max", "degenerate generations (loop, early end, empty) minus fp16's, points"),
    "min_identical_at_32": ("min", "share of greedy generations identical to fp16's after 32 tokens"),
    "min_median_tokens_to_divergence": ("min", "median tokens a greedy generation shares with fp16's before they part"),
    "max_long_kld_mean_late": ("max", "mean KL divergence vs fp16 at the latest positions of the long windows "
                                      "(their last position bucket), nats"),
    "max_long_ppl_increase_pct_late": ("max", "PPL increase vs fp16 at the latest positions of the long windows, % "
                                              "(paired over blocks of positions)"),
    "max_long_kld_rise": ("max", "KLD at the latest positions minus KLD at the first ones, nats"),
    "max_needle_accuracy_drop": ("max", "planted facts retrieved: fp16's share minus this cell's, points "
                                        "(paired over long windows)"),
    "max_if_strict_drop_points": ("max", "instruction prompts fully followed (strict): fp16's share minus this "
                                         "cell's, points (paired over prompts)"),
    "max_if_loose_drop_points": ("max", "instruction prompts fully followed (loose): fp16's share minus this "
                                        "cell's, points (paired over prompts)"),
    "max_size_mb": ("max", "size on disk, MB (10^6 bytes)"),
    "max_bits_per_weight": ("max", "bits per source parameter"),
    "min_decode_speedup": ("min", "decode tok/s vs the fp16 weights on the same runtime"),
}
BASELINE_LIMITS = {
    "max_ppl_increase_pct_points": ("max", "worsening of the PPL increase vs fp16, percentage points"),
    "max_kld_mean_increase": ("max", "increase of mean KL divergence, nats"),
    "max_kld_p99_increase": ("max", "increase of the per-token KLD p99, nats"),
    "max_top1_agreement_drop": ("max", "drop of top-1 agreement (fraction)"),
    "max_delta_p_rms_increase": ("max", "increase of the RMS Δp (fraction)"),
    "max_acc_drop_points": ("max", "worsening of the accuracy drop vs fp16 per task, points"),
    "max_flip_rate_increase": ("max", "increase of the flip rate vs fp16 per task"),
    "max_size_increase_pct": ("max", "growth of the size on disk, %"),
    "max_bits_per_weight_increase": ("max", "increase of bits per weight"),
    "max_decode_speedup_drop": ("max", "drop of the decode speed-up vs fp16 weights"),
}
# shown in the report, but no rule: a percentile bootstrap's upper bound never exceeds the observed maximum, and
# p99.9 of a default run (24,576 tokens) rests on about 25 of them, so neither has an interval that holds
DESCRIPTIVE_ONLY = {"max_kld_max": "the largest per-token KLD", "max_kld_p999": "the per-token KLD p99.9",
                    "max_kld_p999_increase": "the per-token KLD p99.9"}
PER_TASK = ("max_acc_drop_points", "max_flip_rate", "max_flip_rate_increase")
OTHER_KEYS = ("decode_runtime",)  # the runtime whose decode speed min_decode_speedup reads


@dataclass(frozen=True)
class Policy:
    """A parsed policy: per-pattern limit tables in file order."""

    source: str  # file path or "default"
    on_inconclusive: str = "fail"
    seed: int = 0
    resamples: int = 4000
    confidence: float = 0.95
    tables: tuple[tuple[str, dict], ...] = ()  # (pattern, {limit: value, "baseline": {...}})
    text: str = field(default="", repr=False)

    def limits_for(self, variant: str) -> tuple[dict, dict]:
        """(limits, baseline limits) that apply to `variant`, merged in file order."""
        own, base = {}, {}
        for pattern, table in self.tables:
            if fnmatch.fnmatchcase(variant, pattern):
                own.update({k: v for k, v in table.items() if k != "baseline"})
                base.update(table.get("baseline", {}))
        return own, base

    def literal_variants(self) -> list[str]:
        return [p for p, _ in self.tables if not any(ch in p for ch in "*?[")]

    def as_dict(self) -> dict:
        return {"source": self.source, "policy_version": POLICY_VERSION, "on_inconclusive": self.on_inconclusive,
                "bootstrap": {"seed": self.seed, "resamples": self.resamples, "confidence": self.confidence},
                "variants": {p: t for p, t in self.tables}}


def _check_limits(where: str, table: dict, known: dict, tasks: tuple[str, ...]) -> None:
    for key, value in table.items():
        if key in OTHER_KEYS and known is LIMITS:
            if not isinstance(value, str):
                raise UserError(f"policy {where}: {key} must be a runtime name")
            continue
        if key in DESCRIPTIVE_ONLY:
            raise UserError(f"policy {where}: {key} is not a gate rule: {DESCRIPTIVE_ONLY[key]} is descriptive only "
                            "(a bootstrap interval cannot bound an extreme); bound max_kld_p99 instead")
        if key not in known:
            raise UserError(f"policy {where}: unknown limit '{key}' (known: {', '.join(list(known) + list(OTHER_KEYS))})")
        if key in PER_TASK:
            if not isinstance(value, dict):
                raise UserError(f"policy {where}: {key} takes a table of task = limit (e.g. {{ \"*\" = 3.0 }})")
            for task, v in value.items():
                name = task.split(":")[0]
                if task != "*" and name not in tasks:
                    raise UserError(f"policy {where}: unknown task '{task}' in {key} (known: *, {', '.join(tasks)})")
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise UserError(f"policy {where}: {key}.{task} must be a number")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise UserError(f"policy {where}: {key} must be a number")


def parse_policy(text: str, source: str) -> Policy:
    from evaluators.lm_eval_tasks import LOCAL_TASKS as SUPPORTED_TASKS

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"policy '{source}' is not valid TOML: {e}") from None
    if doc.get("policy_version") != POLICY_VERSION:
        raise UserError(f"policy '{source}': policy_version must be {POLICY_VERSION} (got {doc.get('policy_version')!r})")
    unknown = set(doc) - {"policy_version", "on_inconclusive", "bootstrap", "variants"}
    if unknown:
        raise UserError(f"policy '{source}': unknown key(s) {', '.join(sorted(unknown))}")
    on_inc = doc.get("on_inconclusive", "fail")
    if on_inc not in ON_INCONCLUSIVE:
        raise UserError(f"policy '{source}': on_inconclusive must be one of {', '.join(ON_INCONCLUSIVE)}")
    boot = doc.get("bootstrap", {})
    if set(boot) - {"seed", "resamples", "confidence"}:
        raise UserError(f"policy '{source}': [bootstrap] takes seed, resamples, confidence")
    tables = []
    for pattern, table in (doc.get("variants") or {}).items():
        if not isinstance(table, dict):
            raise UserError(f"policy '{source}': variants.{pattern} must be a table")
        if not any(ch in pattern for ch in "*?[") and not is_variant(pattern):
            raise UserError(f"policy '{source}': unknown variant '{pattern}' (a variant name or a glob such as \"gguf-*\")")
        base = table.get("baseline", {})
        _check_limits(f"[variants.\"{pattern}\"]", {k: v for k, v in table.items() if k != "baseline"}, LIMITS,
                      SUPPORTED_TASKS)
        _check_limits(f"[variants.\"{pattern}\".baseline]", base, BASELINE_LIMITS, SUPPORTED_TASKS)
        tables.append((pattern, json.loads(json.dumps(table))))
    policy = Policy(source=source, on_inconclusive=on_inc, seed=int(boot.get("seed", 0)),
                    resamples=int(boot.get("resamples", 4000)), confidence=float(boot.get("confidence", 0.95)),
                    tables=tuple(tables), text=text)
    if policy.resamples < 100 or not 0.5 < policy.confidence < 1:
        raise UserError(f"policy '{source}': bootstrap needs resamples >= 100 and 0.5 < confidence < 1")
    return policy


def load_policy(path: Path | None) -> Policy:
    """The policy at `path`, or the shipped default."""
    target = path or DEFAULT_POLICY
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read policy '{target}': {e}") from None
    return parse_policy(text, "default" if path is None else str(path))

