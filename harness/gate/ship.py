"""What to ship, from a verdict: among the variants that pass, the smallest, and the fastest on the chosen
runtime; when none passes, the closest one and what it failed. Every figure is a row of the results.json the
verdict read (its estimate and interval, as the report shows them), on the chosen runtime only: a variant not
measured there says so rather than borrowing another runtime's figure."""
from __future__ import annotations

from core.names import REFERENCE_VARIANT


def _rows(results: dict) -> dict:
    return {(r["variant"], r["runtime"], r["metric"]): r for r in results["rows"]}


def _quality(rows: dict, variant: str, runtime: str | None) -> dict | None:
    """The variant's ΔPPL row on `runtime`, or None when it was not measured there (never another runtime's)."""
    return rows.get((variant, runtime, "ppl_increase_pct"))


def _size(rows: dict, variant: str) -> float | None:
    sizes = [r["value"] for (v, _, m), r in rows.items() if v == variant and m == "size_bytes"]
    return sizes[0] if sizes else None


def _speed(rows: dict, variant: str, runtime: str | None) -> float | None:
    r = rows.get((variant, runtime, "decode_tok_s"))
    return r["value"] if r else None


def _entry(rows: dict, variant: str, runtime: str | None, why: str) -> dict:
    q = _quality(rows, variant, runtime)
    size = _size(rows, variant)
    e = {"variant": variant, "why": why, "size_mb": None if size is None else round(size / 1e6, 1),
         "runtime": runtime, "ppl_increase_pct": None if q is None else [q["value"], q["ci_low"], q["ci_high"]],
         "decode_tok_s": _speed(rows, variant, runtime)}
    e["text"] = text(e)
    return e


def text(e: dict) -> str:
    parts = [e["variant"]]
    if e["size_mb"] is not None:
        parts.append(f"{e['size_mb']:.1f} MB")
    where = f" on {e['runtime']}" if e["runtime"] else ""
    if e["ppl_increase_pct"]:
        v, lo, hi = e["ppl_increase_pct"]
        parts.append(f"ΔPPL {v:+.1f}% [{lo:+.1f}, {hi:+.1f}]{where}")
    else:
        parts.append(f"ΔPPL not measured{where}")
    if e.get("decode_tok_s"):
        parts.append(f"{e['decode_tok_s']:.1f} tok/s decode")
    return ", ".join(parts)


def recommend(results: dict, variant_verdicts: dict[str, str], decisions: list, runtime: str | None) -> dict:
    """{"runtime", "smallest", "fastest", "closest", "summary"}; fp16 itself is the baseline, not a candidate."""
    rows = _rows(results)
    runtime = runtime or _default_runtime(rows)
    passing = [v for v, d in variant_verdicts.items() if d == "pass" and v != REFERENCE_VARIANT and _size(rows, v)]
    out: dict = {"runtime": runtime, "smallest": None, "fastest": None, "closest": None}
    if passing:
        small = min(passing, key=lambda v: (_size(rows, v), v))
        out["smallest"] = _entry(rows, small, runtime, "the smallest variant that passes")
        timed = [v for v in passing if _speed(rows, v, runtime)]
        if timed:
            fast = min(timed, key=lambda v: (-_speed(rows, v, runtime), v))
            out["fastest"] = _entry(rows, fast, runtime, f"the fastest passing variant on {runtime}")
        out["summary"] = f"ship: {out['smallest']['text']}"
        if out["fastest"] and out["fastest"]["variant"] != small:
            out["summary"] += f"; fastest on {runtime}: {out['fastest']['text']}"
        return out
    gated = [v for v in variant_verdicts if v != REFERENCE_VARIANT]
    if not gated:
        out["summary"] = "nothing to ship: no variant besides fp16 was gated"
        return out

    def shortfall(v: str) -> tuple:
        mine = [d for d in decisions if d.variant == v]
        q = _quality(rows, v, runtime)
        return (sum(d.decision == "fail" for d in mine), sum(d.decision == "inconclusive" for d in mine),
                q["value"] if q else float("inf"), v)

    near = min(gated, key=shortfall)
    failed = sorted({d.rule for d in decisions if d.variant == near and d.decision != "pass"})
    out["closest"] = {**_entry(rows, near, runtime, "no variant passes; this one fails the fewest rules"),
                      "not_passed": failed}
    out["summary"] = f"nothing passes; the closest is {out['closest']['text']} (not passed: {', '.join(failed)})"
    return out


def _default_runtime(rows: dict) -> str | None:
    """The runtime with decode speeds for the most variants (llama.cpp on a CPU run)."""
    counts: dict[str, int] = {}
    for (v, rt, m) in rows:
        if m == "decode_tok_s":
            counts[rt] = counts.get(rt, 0) + 1
    return max(counts, key=lambda rt: (counts[rt], rt == "llama.cpp")) if counts else None
