"""Wall time of every stage of a run (installs, source conversion, each variant build, each cell,
each lm-eval cell, the report), for results.json, the report and the terminal's closing summary."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from core.tool_envs import ENVIRONMENTS

# stamp files `make` writes after each install, holding the seconds it took
INSTALL_STAMPS = {e.label: e.stamp for e in ENVIRONMENTS.values()}


@dataclass
class Stage:
    name: str
    kind: str  # install | source | windows | build | cell | generation (inside a cell) | tasks | long | instruct | gate | report | other
    wall_s: float
    cached: bool = False
    note: str = ""
    gpu_busy: float | None = None  # share of the stage's time a kernel ran on its GPU (cells on a GPU only)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["wall_s"] = round(self.wall_s, 2)
        return d


class StageClock:
    def __init__(self) -> None:
        self.stages: list[Stage] = []

    @contextmanager
    def stage(self, name: str, kind: str):
        t0 = time.time()
        try:
            yield
        finally:
            self.stages.append(Stage(name, kind, time.time() - t0))

    def add(self, name: str, kind: str, wall_s: float, cached: bool = False, note: str = "",
            gpu_busy: float | None = None) -> None:
        self.stages.append(Stage(name, kind, wall_s, cached, note, gpu_busy))

    def as_list(self) -> list[dict]:
        return [s.as_dict() for s in self.stages]


def installs() -> list[Stage]:
    """What `make` recorded for the environments present (their install took place before this run)."""
    out = []
    for name, stamp in INSTALL_STAMPS.items():
        try:
            text = stamp.read_text().strip()
        except OSError:
            continue
        secs = float(text) if text.replace(".", "", 1).isdigit() else float("nan")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp.stat().st_mtime))
        out.append(Stage(name, "install", secs, note=f"made {when}, before this run"))
    return out


def summary(stages: list[dict]) -> str:
    """A plain-text table for the terminal: stage, seconds, and what was reused."""
    gpu = any(s.get("gpu_busy") is not None for s in stages)
    rows = [(s["name"], "—" if s["wall_s"] != s["wall_s"] else f"{s['wall_s']:.1f}",
             ("" if s.get("gpu_busy") is None else f"{100 * s['gpu_busy']:.0f}%") if gpu else None,
             "cached" if s["cached"] else s.get("note", "")) for s in stages]
    w = max([len(r[0]) for r in rows] + [5])
    lines = [f"{'stage'.ljust(w)}  {'seconds':>8}" + ("  GPU busy" if gpu else "") + "  note"]
    lines += [f"{n.ljust(w)}  {t:>8}" + (f"  {b:>8}" if gpu else "") + f"  {note}" for n, t, b, note in rows]
    run = sum(s["wall_s"] for s in stages if s["kind"] not in ("install", "generation") and s["wall_s"] == s["wall_s"])
    lines.append(f"{'this run (installs excluded)'.ljust(w)}  {run:>8.1f}")
    for kind, what in (("long", "long windows"), ("instruct", "instruction following")):
        part = sum(s["wall_s"] for s in stages if s["kind"] == kind and s["wall_s"] == s["wall_s"])
        if part and run:
            lines.append(f"{f'  of which {what} (all cells)'.ljust(w)}  {part:>8.1f}  {100 * part / run:.0f}% of this run")
    return "\n".join(lines)

