"""verdict.json (schema-versioned), verdict.md (fits a CI job summary) and the overall decision."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from harness.gate.ship import recommend
from harness.gate.coverage_record import source as coverage_source
from harness.gate.decision import RULE_TEXT, Decision
from harness.gate.policy import Policy
from harness.schema import write_json_atomic

VERDICT_SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("verdict.schema.json")
EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3}


def overall(decisions: list[Decision], on_inconclusive: str) -> str:
    if any(d.decision == "fail" for d in decisions):
        return "fail"
    if any(d.decision == "inconclusive" for d in decisions):
        return on_inconclusive
    return "pass"


def per_variant(decisions: list[Decision], on_inconclusive: str) -> dict[str, str]:
    out: dict[str, list[Decision]] = {}
    for d in decisions:
        out.setdefault(d.variant, []).append(d)
    return {v: overall(ds, on_inconclusive) for v, ds in out.items()}


def build(decisions: list[Decision], policy: Policy, results_path: Path, results: dict,
          baseline_path: Path | None, paired_baseline: bool) -> dict:
    verdict = overall(decisions, policy.on_inconclusive)
    variants = per_variant(decisions, policy.on_inconclusive)
    ship = recommend(results, variants, decisions, policy.limits_for("*")[0].get("decode_runtime"))
    return {
        "schema_version": VERDICT_SCHEMA_VERSION,
        "tool": "quantcompare gate",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "verdict": verdict,
        "exit_code": EXIT_CODES[verdict],
        "variants": variants,
        "ship": ship,
        "counts": {k: sum(d.decision == k for d in decisions) for k in ("pass", "fail", "inconclusive")},
        "rule_text": RULE_TEXT.format(level=policy.confidence),
        "results": {"path": str(results_path), "model": results["source"]["name"], "created_at": results.get("created_at"),
                    "windows_sha256": results["windows"].get("windows_sha256"),
                    "git_commit": results["environment"].get("git_commit")},
        "baseline": None if baseline_path is None else {"path": str(baseline_path), "paired": paired_baseline},
        "bootstrap": {"seed": policy.seed, "resamples": policy.resamples, "confidence": policy.confidence},
        "policy": policy.as_dict(),
        "rules": [d.as_dict() for d in decisions],
    }


def _num(x) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def markdown(doc: dict) -> str:
    icon = {"pass": "✅ PASS", "fail": "❌ FAIL", "inconclusive": "⚠️ INCONCLUSIVE"}
    lines = [f"## quantcompare gate: {icon[doc['verdict']]} — {doc['results']['model']}", ""]
    lines.append(" · ".join(f"`{v}` {icon[d]}" for v, d in doc["variants"].items()) or "(no rule applied)")
    if doc.get("ship", {}).get("summary"):
        s = doc["ship"]["summary"]
        lines += ["", f"**{s[0].upper() + s[1:]}**"]
    lines += ["", "| variant | runtime | rule | estimate [CI] | limit | decision |", "|---|---|---|---|---|---|"]
    unvalidated = False
    for r in doc["rules"]:
        ci = f" [{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if r["ci_low"] is not None and r["ci_low"] != r["ci_high"] else ""
        dec = r["decision"].upper() if r["decision"] != "pass" else "pass"
        why = "" if r["decision"] == "pass" or r["estimate"] is not None else f": {r['reason']}"
        mark = ""
        if "bootstrap" in r["method"] and r.get("interval_coverage") is None:
            mark, unvalidated = " †", True
        lines.append(f"| {r['variant']} | {r['runtime'] or '—'} | {r['rule']}{mark} | {_num(r['estimate'])}{ci} | "
                     f"{r['comparison']} {_num(r['limit'])} | {dec}{why} |")
    b = doc["bootstrap"]
    if unvalidated:
        lines += ["", f"† interval not validated: no coverage study ({coverage_source() or 'harness/coverage.py'}) "
                      "showed this quantity's interval holding 95 ± 3% at the default counts; read its decision "
                      "with that in mind."]
    lines += ["", f"{doc['rule_text']} Intervals: percentile bootstrap, {b['resamples']} resamples, seed {b['seed']}; "
              f"inconclusive counts as **{doc['policy']['on_inconclusive']}**. Policy: {doc['policy']['source']}."]
    if doc["baseline"]:
        kind = "paired (same windows and tokenizer)" if doc["baseline"]["paired"] else "UNPAIRED (other windows)"
        lines.append(f"Baseline: {doc['baseline']['path']}, compared {kind}.")
    return "\n".join(lines) + "\n"


def write(doc: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    jf, mf = out_dir / "verdict.json", out_dir / "verdict.md"
    write_json_atomic(jf, doc)
    tmp = mf.with_name(mf.name + ".tmp")
    tmp.write_text(markdown(doc), encoding="utf-8")
    tmp.replace(mf)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown(doc))
    return jf, mf


def validate(doc: dict) -> list[str]:
    """Problems with a verdict document against verdict.schema.json (empty when valid)."""
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
