"""Run profiles: the counts a run measures with, chosen by what the run is for.

- quick: the default on a CPU host. A first look in minutes that still decides what it shows: the window
  measures (PPL, KLD, top-1) and the task flip rate decide at its counts; instruction following, which cannot
  decide at any count a CPU run affords, is left out, and the report says which rules cannot decide here.
- release: the default with --device cuda. The counts the gate's rules need to decide (harness/gate/resolution.py
  says, rule by rule, how wide an interval is at a count, and the release counts are chosen so that every rule's
  interval is at most half its limit).

A profile is a layer of settings under the config file and the command line: any option given there wins."""
from __future__ import annotations

PROFILE_NAMES = ("auto", "quick", "release")

PROFILES: dict[str, dict[str, dict]] = {
    "quick": {
        "eval": {"windows": 48, "gen_prompts": 8, "long_ctx": 2048, "long_windows": 1, "needles": 5,
                 "instructions": 0, "speed_repeats": 2},
        "tasks": {"limit": 50},
    },
    "release": {
        "eval": {"windows": 96, "gen_prompts": 192, "long_ctx": 8192, "long_windows": 9, "needles": 5,
                 "instructions": 276, "speed_repeats": 3},
        "tasks": {"limit": 600},
    },
}

SUMMARY = {
    "quick": "a first look: the window measures and the task flip rate decide; generations and retrieval are "
             "descriptive; no instruction following",
    "release": "the counts the gate's rules need to decide (each rule's interval at most half its limit)",
}


def profile_name(asked: str | None, device: str) -> str:
    """The profile a run uses: the one asked for, or (auto) release on a GPU and quick on a CPU."""
    if asked in (None, "", "auto"):
        return "release" if device != "cpu" else "quick"
    if asked not in PROFILES:
        from core.errors import UserError

        raise UserError(f"unknown profile '{asked}'; choose from {', '.join(PROFILE_NAMES)}")
    return asked


def profile_layer(name: str) -> dict[str, dict]:
    """The profile's settings as config sections (a copy: callers may merge into it)."""
    return {sec: dict(values) for sec, values in PROFILES[name].items()}


def tally(rows: list[dict]) -> dict:
    """The one summary of a decidability table (harness/gate/resolution.py) that the terminal and the report print:
    how many rules decide, and which cannot (with what they would need) or are not measured."""
    return {"decide": sum(r["decides"] is True for r in rows), "total": len(rows),
            "cannot": [r for r in rows if r["decides"] is False], "not_measured": [r["rule"] for r in rows
                                                                                  if r["decides"] is None]}
