"""The report's instruction-following section: strict and loose accuracy per cell with their paired change from
fp16, and which instructions each cell followed, read from results.json's instruction_following section and rows
(harness/instruct_metrics.py defines every figure)."""
from __future__ import annotations

import html

import pandas as pd

from core.names import variant_key
from reports.tables import _ci as ci


def _row(results, v, rt, metric):
    return next((r for r in results["rows"] if (r["variant"], r["runtime"], r["metric"]) == (v, rt, metric)), None)


def _pct(r, signed: bool = False) -> str:
    if r is None:
        return "—"
    lo, hi = r["ci_low"], r["ci_high"]
    scale = 1.0 if signed else 100.0
    return ci(r["value"] * scale, None if lo is None else lo * scale, None if hi is None else hi * scale,
              "+.1f" if signed else ".1f")


def _cells(results) -> list[dict]:
    sec = results.get("instruction_following") or {}
    key = variant_key(results)
    return sorted(sec.get("cells", []), key=lambda c: (key(c["variant"]), c["runtime"]))


def instruct_frame(results) -> pd.DataFrame | None:
    cells = _cells(results)
    if not cells:
        return None
    status = {(c["variant"], c["runtime"]): c["status"] for c in results["cells"]}
    out = []
    for c in cells:
        v, rt = c["variant"], c["runtime"]
        d = {"variant": v, "runtime": rt,
             "status": status.get((v, rt), c["status"]) if c["status"] == "ok" else c["status"]}
        if c["status"] != "ok":
            d["prompts followed, strict %"] = c.get("error") or c["status"]
            out.append(d)
            continue
        d["prompts followed, strict %"] = _pct(_row(results, v, rt, "if_prompt_strict"))
        d["loose %"] = _pct(_row(results, v, rt, "if_prompt_loose"))
        d["instructions followed, strict %"] = _pct(_row(results, v, rt, "if_instruction_strict"))
        d["strict drop vs fp16, pts"] = _pct(_row(results, v, rt, "if_prompt_strict_drop"), signed=True)
        d["loose drop vs fp16, pts"] = _pct(_row(results, v, rt, "if_prompt_loose_drop"), signed=True)
        ended = [a["ended"] for a in c["answers"]]
        d["answers ended"] = f"{sum(ended)}/{len(ended)}"
        bad = c.get("followed_but_degenerate")
        # answers the checks would pass that loop or are empty: not counted as followed, shown as damage
        d["followed by a loop or empty answer"] = f"{sum(bad)}/{len(bad)}" if bad is not None else "—"
        out.append(d)
    return pd.DataFrame(out)


def by_instruction_frame(results) -> pd.DataFrame | None:
    """Instruction × cell: followed / given (strict)."""
    cells = [c for c in _cells(results) if c["status"] == "ok" and c.get("by_instruction")]
    if not cells:
        return None
    ids = sorted({i for c in cells for i in c["by_instruction"]})
    rows = []
    for i in ids:
        r = {"instruction": i}
        for c in cells:
            got, n = c["by_instruction"].get(i, (0, 0))
            r[f"{c['variant']} × {c['runtime']}"] = f"{got}/{n}" if n else "—"
        rows.append(r)
    return pd.DataFrame(rows)


def section(results, table) -> str:
    sec = results.get("instruction_following")
    frame = instruct_frame(results)
    if not sec or frame is None:
        return ""
    by = by_instruction_frame(results)
    n_ins = sum(len(p["instructions"]) for p in sec["prompts"])
    if sec.get("set") == "ifbench":
        lo = sec.get("left_out") or {}
        about = (f"<p class='note'>{len(sec['prompts'])} of IFBench's published test prompts ({sec.get('set_name')}; "
                 f"{n_ins} verifiable instructions; chosen by seed {sec.get('seed')}), "
                 f"{'in the model' + chr(39) + 's chat template, ' if sec.get('chat_template') else ''}{sec['n_new']} "
                 "greedy tokens each, the same token ids in every cell, cut at the end of sequence and judged by "
                 "IFBench's own checkers as if-verifiable keeps them. Strict: the answer as written; loose: IFBench's "
                 "clean-ups (first or last line dropped, '*' removed). A prompt counts when every instruction is "
                 "followed, and never when its answer loops or is empty (shown as damage). Left out: "
                 f"{lo.get('prompts', 0)} prompts whose checks need NLTK data no package ships offline "
                 f"({', '.join(f'{k}: {v}' for k, v in (lo.get('instructions') or {}).items())}). Intervals: "
                 "bootstrap over prompts, paired with fp16 × transformers' answer to the same prompt for the drops. "
                 "An answer cut by the token budget can fail an instruction about its length or ending.</p>")
        return ("<h2>Instruction following vs fp16</h2>" + table(frame) + about
                + ("<h3>Instructions followed (strict), per cell</h3>" + table(by) if by is not None else "")
                + _examples(results))
    return ("<h2>Instruction following vs fp16</h2>" + table(frame)
            + f"<p class='note'>{len(sec['prompts'])} prompts, each a short writing task with one or two of IFEval's "
            f"verifiable instructions ({n_ins} in all: word and sentence counts, keywords, no commas, JSON, bullet "
            f"lists, case, endings, …; seed {sec.get('seed')}), "
            f"{'in the model' + chr(39) + 's chat template, ' if sec.get('chat_template') else ''}{sec['n_new']} greedy "
            "tokens each, the same token ids in every cell, cut at the end of sequence and judged by "
            "harness/instructions.py (home-made, after IFEval's rules but not validated against them; words are \\w+ runs). Strict: the answer as written; loose: "
            "IFEval's clean-ups (first or last line dropped, '*' removed). A prompt counts when every instruction is "
            "followed. Intervals: bootstrap over prompts, paired with fp16 × transformers' answer to the same prompt "
            "for the drops. An answer cut by the token budget can fail an instruction about its ending.</p>"
            + ("<h3>Instructions followed (strict), per cell</h3>" + table(by) if by is not None else "")
            + _examples(results))


def _examples(results) -> str:
    """fp16's answer and each other cell's, for the first prompts where some cell's outcome differs from fp16's."""
    sec = results["instruction_following"]
    cells = [c for c in _cells(results) if c["status"] == "ok"]
    ref = next((c for c in cells if (c["variant"], c["runtime"]) == ("fp16", "transformers")), None)
    if ref is None:
        return ""
    shown = []
    for i, p in enumerate(sec["prompts"]):
        if any(c["prompt_strict"][i] != ref["prompt_strict"][i] for c in cells):
            shown.append(i)
        if len(shown) == 3:
            break
    if not shown:
        return ""
    parts = ["<h3>Where a cell and fp16 part (first three prompts)</h3>"]
    for i in shown:
        parts.append(f"<p><b>{html.escape(sec['prompts'][i]['text'])}</b></p><table class='gen'>")
        for c in cells:
            mark = "followed" if c["prompt_strict"][i] else "<span class='degenerate'>not followed</span>"
            parts.append(f"<tr><th>{html.escape(c['variant'])} × {html.escape(c['runtime'])}<br>{mark}</th>"
                         f"<td><pre>{html.escape(c['answers'][i]['text'][:600])}</pre></td></tr>")
        parts.append("</table>")
    return "".join(parts)
