"""results.json: schema-versioned, one row per (variant, runtime, metric), written atomically."""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

SCHEMA_VERSION = 3  # 3: the resolved config, variant_order, same_weights_variants;
READABLE_SCHEMAS = (2, 3)  # what the gate and the report read (3 only adds)
# 2: quality rows from harness/metrics (bootstrap by article), ppl_increase_pct

METRICS = {
    "ppl": "",
    "ppl_increase_pct": "%",
    "ln_ppl_ratio": "nats",
    "cor_ln_ppl": "",
    "kld_mean": "nats",
    "kld_median": "nats",
    "kld_p90": "nats",
    "kld_p99": "nats",
    "kld_p999": "nats",
    "kld_max": "nats",
    "top1_agreement": "fraction",
    "delta_p_mean": "fraction",
    "delta_p_rms": "fraction",
    "size_bytes": "bytes",
    "bits_per_weight": "bits",
    "peak_rss_bytes": "bytes",
    "prefill_tok_s": "tok/s",
    "decode_tok_s": "tok/s",
    "eval_tok_s": "tok/s",
    "weight_bytes_per_token": "bytes",
    "decode_roofline_pct": "%",
    "peak_vram_bytes": "bytes",
    "ttft_s": "s",
    # greedy generations against fp16's (harness/generation_metrics.py)
    "gen_identical_at_16": "fraction",
    "gen_identical_at_32": "fraction",
    "gen_identical_at_64": "fraction",
    "gen_median_tokens_to_divergence": "tokens",
    "gen_loop_rate": "fraction",
    "gen_loop_rate_increase": "points",
    "gen_degenerate_rate": "fraction",
    "gen_degenerate_rate_increase": "points",
    "gen_distinct2": "fraction",
    # long windows with planted facts (harness/long_metrics.py)
    "long_kld_rise": "nats",
    "needle_accuracy": "fraction",
    "needle_accuracy_drop": "points",
    # instruction following (harness/instruct_metrics.py)
    "if_prompt_strict": "fraction",
    "if_prompt_loose": "fraction",
    "if_instruction_strict": "fraction",
    "if_prompt_strict_drop": "points",
    "if_prompt_loose_drop": "points",
}
ROW_KEYS = ("variant", "runtime", "metric", "value", "ci_low", "ci_high", "unit")
# families of metrics: serving sweeps per batch size (vLLM) and lm-eval task metrics ("task:metric")
METRIC_PATTERNS = (
    (re.compile(r"delta_p_p\d+"), "fraction"),
    (re.compile(r"long_kld_mean_\d+k?_\d+k?"), "nats"),
    (re.compile(r"long_ppl_increase_pct_\d+k?_\d+k?"), "%"),
    (re.compile(r"long_ppl_\d+k?_\d+k?"), ""),
    (re.compile(r"output_tok_s_b\d+"), "tok/s"),
    (re.compile(r"decode_tok_s_b\d+"), "tok/s"),
    (re.compile(r"(ttft|itl)_p(50|90)_s_b\d+"), "s"),
    (re.compile(r"[a-z0-9_]+:[a-z0-9_]+(_delta_vs_fp16)?"), "task"),
)


def metric_unit(metric: str) -> str | None:
    """The unit of a known metric, or None when the metric is unknown."""
    if metric in METRICS:
        return METRICS[metric]
    for pattern, unit in METRIC_PATTERNS:
        if pattern.fullmatch(metric):
            return unit
    return None


@dataclass
class Row:
    """One measurement. ci_low/ci_high: for quality metrics the 95% percentile-bootstrap interval of
    harness/metrics.py (windows resampled by article, paired with fp16 where the metric compares); min/max
    over the timed runs for speed; null where no interval applies."""

    variant: str
    runtime: str | None
    metric: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        unit = metric_unit(self.metric)
        if unit is None:
            raise ValueError(f"unknown metric {self.metric!r}")
        self.unit = self.unit or unit
        for k in ("value", "ci_low", "ci_high"):
            v = getattr(self, k)
            if v is not None and not math.isfinite(v):
                setattr(self, k, None if k != "value" else float("nan"))

    def as_dict(self) -> dict:
        return asdict(self)


def _clean(obj):
    """JSON has no NaN/Infinity: write null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json_atomic(path: Path, data: dict) -> None:
    """Write beside, then rename: a full disk or a kill never leaves half a file where the last whole one was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(_clean(data), indent=1, allow_nan=False))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def validate(results: dict) -> list[str]:
    """Problems with a results document (empty list when it is valid)."""
    problems = []
    if results.get("schema_version") not in READABLE_SCHEMAS:
        problems.append(f"schema_version is {results.get('schema_version')!r}, expected one of {READABLE_SCHEMAS}")
    for key in ("rows", "environment", "manifests", "source", "windows", "cells", "flags"):
        if key not in results:
            problems.append(f"missing key {key!r}")
    for i, row in enumerate(results.get("rows", [])):
        if set(row) != set(ROW_KEYS):
            problems.append(f"row {i} keys {sorted(row)} != {sorted(ROW_KEYS)}")
            continue
        if metric_unit(row["metric"]) is None:
            problems.append(f"row {i}: unknown metric {row['metric']!r}")
        if not isinstance(row["value"], (int, float)) and row["value"] is not None:
            problems.append(f"row {i}: value is not a number")
    return problems


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(ROW_KEYS), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: "" if r.get(k) is None else r.get(k) for k in ROW_KEYS})
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
