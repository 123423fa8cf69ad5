"""The report's generation section: a table of the generation rows, the survival plot, and a side-by-side
viewer of fp16's continuation beside each variant's, the first differing token marked, degenerate
continuations flagged, the most damaged prompts first. Every string is escaped."""
from __future__ import annotations

import html

import pandas as pd

from core.names import variant_key

METRICS = (("gen_identical_at_16", "identical @16", 100, "%"), ("gen_identical_at_32", "identical @32", 100, "%"),
           ("gen_identical_at_64", "identical @64", 100, "%"),
           ("gen_median_tokens_to_divergence", "median tokens to divergence", 1, ""),
           ("gen_loop_rate", "loop rate", 100, "%"), ("gen_loop_rate_increase", "loop rate − fp16's", 1, " pts"),
           ("gen_degenerate_rate", "degenerate", 100, "%"), ("gen_degenerate_rate_increase", "degenerate − fp16's", 1, " pts"),
           ("gen_distinct2", "distinct-2", 1, ""))
VIEWER_PROMPTS = 16  # prompts shown in the viewer, most damaged first


def _fmt(r: dict | None, scale: float, unit: str) -> str:
    if r is None:
        return "—"
    nd = 0 if scale == 100 or unit == " pts" else 2 if unit == "" and r["metric"] != "gen_median_tokens_to_divergence" else 0
    v, lo, hi = (x * scale if x is not None else None for x in (r["value"], r["ci_low"], r["ci_high"]))
    if lo is None or hi is None or lo != lo:
        return f"{v:.{nd}f}{unit}"
    return f"{v:.{nd}f}{unit} [{lo:.{nd}f}, {hi:.{nd}f}]"


def generation_frame(results: dict) -> pd.DataFrame | None:
    rows = {(r["variant"], r["runtime"], r["metric"]): r for r in results["rows"] if r["metric"].startswith("gen_")}
    cells = sorted({(v, rt) for v, rt, _ in rows}, key=lambda k: (variant_key(results)(k[0]), k[1]))
    if not cells:
        return None
    out = []
    for v, rt in cells:
        out.append({"variant": v, "runtime": rt,
                    **{label: _fmt(rows.get((v, rt, m)), scale, unit) for m, label, scale, unit in METRICS}})
    return pd.DataFrame(out)


def _new_kinds(c: dict, ref: dict, i: int) -> list[str]:
    """What degenerated in this continuation that did not in fp16's (fp16's own loop is not damage)."""
    return [k for k in c["generation"]["degenerate"][i] if k not in ref["generation"]["degenerate"][i]]


def _damage(i: int, cells: list[dict], ref: dict) -> tuple:
    degenerate = sum(bool(_new_kinds(c, ref, i)) for c in cells)
    mean_div = sum(c["generation"]["first_divergence"][i] for c in cells) / max(1, len(cells))
    return (-degenerate, mean_div)


def viewer(results: dict) -> str:
    """fp16's continuation beside each variant's, prompt by prompt, most damaged first."""
    gen = results.get("generation") or {}
    ref_key = ((gen.get("reference") or {}).get("variant"), (gen.get("reference") or {}).get("runtime"))
    docs = [c for c in results["cells"] if c["status"] in ("ok", "broken") and (c.get("generation") or {}).get("pieces")]
    ref = next((c for c in docs if (c["variant"], c["runtime"]) == ref_key), None)
    others = sorted((c for c in docs if c is not ref and c.get("role", "measured") == "measured"),
                    key=lambda c: (variant_key(results)(c["variant"]), c["runtime"]))
    if ref is None or not others:
        return ""
    n_new = gen["n_new"]
    order = sorted(range(len(gen["prompts"])), key=lambda i: _damage(i, others, ref))[:VIEWER_PROMPTS]
    e = html.escape
    parts = ["<div class='viewer'>"]
    for i in order:
        p = gen["prompts"][i]
        parts.append(f"<details{' open' if i == order[0] else ''}><summary><b>{e(p['set'])}</b> · {e(p['text'][:160])}"
                     f" <span class='small'>({e(p['source'])})</span></summary><table class='gen'>")
        own = ref["generation"]["degenerate"][i]
        own_tag = f"<br><span class='small'>{e(', '.join(own).upper())} (its own)</span>" if own else ""
        parts.append(f"<tr><th>fp16 × {e(ref['runtime'])} (reference){own_tag}</th><td><pre>{e(ref['generation']['text'][i])}"
                     f"{' ⏎end' if ref['generation']['ended'][i] else ''}</pre></td></tr>")
        for c in others:
            g = c["generation"]
            same, first, rest = g["pieces"][i]
            k = g["first_divergence"][i]
            kinds = _new_kinds(c, ref, i)
            same_as_ref = [k for k in g["degenerate"][i] if k not in kinds]
            tag = (f"<span class='degenerate'>{e(', '.join(kinds).upper())}</span> " if kinds else "")
            tag += f"{e(', '.join(same_as_ref))} as fp16 · " if same_as_ref else ""
            where = "identical" if k >= n_new else f"differs at token {k}"
            parts.append(f"<tr><th>{e(c['variant'])} × {e(c['runtime'])}<br><span class='small'>{tag}{e(where)}</span></th>"
                         f"<td><pre>{e(same)}<mark>{e(first)}</mark>{e(rest)}{' ⏎end' if g['ended'][i] else ''}</pre></td></tr>")
        parts.append("</table></details>")
    parts.append("</div>")
    return "".join(parts)
