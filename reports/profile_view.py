"""The report's profile line: which counts the run measured with, and which gate rules can decide at them
(results.json's `profile`, made by harness/gate/resolution.py)."""
from __future__ import annotations

import html


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3g}"


def section(results: dict) -> str:
    prof = results.get("profile")
    if not prof:
        return ""
    from core.profiles import tally

    rows = prof.get("decidability") or []
    t = tally(rows)
    cant, off = [r["rule"] for r in t["cannot"]], t["not_measured"]
    head = (f"<p class='small'><b>Profile: {html.escape(prof['name'])}</b> — {html.escape(prof.get('summary', ''))}. "
            f"{t['decide']} of {t['total']} gate rules can decide at this run's counts"
            + (f"; cannot: {html.escape(', '.join(cant))}" if cant else "")
            + (f"; not measured: {html.escape(', '.join(off))}" if off else "") + ".</p>")
    body = "".join(
        f"<tr class='{'dec-inconclusive' if r['decides'] is False else ''}'><td>{html.escape(r['rule'])}</td>"
        f"<td>{html.escape(r['unit'])}</td><td>{html.escape(str(r['count']))}</td><td>± {_fmt(r['half_width'])}</td>"
        f"<td>{_fmt(r['distance'])} ({html.escape(r['limit_from'])})</td>"
        f"<td>{'—' if r['decides'] is None else 'yes' if r['decides'] else 'no'}</td><td>{r['count_needed']}</td></tr>"
        for r in rows)
    table = ("<details><summary>Can each gate rule decide at these counts?</summary><table><thead><tr><th>rule</th>"
             "<th>resampled over</th><th>count</th><th>expected 95% half-width</th><th>limit's distance from no damage"
             "</th><th>decides</th><th>count needed</th></tr></thead><tbody>" + body + "</tbody></table>"
             "<p class='note'>A rule decides when its expected half-width is at most half the distance from no damage "
             "to its limit: a variant with half the limit's damage then passes and one with 1.5 times it fails. The "
             "half-widths are scaled by the square root of the count from those measured at the default counts "
             "(harness/gate/resolution.py). <code>--profile release</code> carries counts at which every rule "
             "decides but those its published prompt set is too small for (SET_BOUND there).</p></details>")
    return head + table
