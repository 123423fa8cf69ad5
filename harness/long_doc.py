"""results.json's long_context section: the long probes, every long cell's per-position scores and retrieval, the
report's curves and heat-map grids, and the check that flags a cell whose late positions fall apart."""
from __future__ import annotations

from dataclasses import asdict

from harness import long_metrics as LM
from harness import metrics
from harness.evidence import collect
from harness.variant_flags import Flag


def section(prepared, long_cells) -> dict | None:
    """The long_context section before any estimate (None when the run measured no long windows)."""
    if prepared is None:
        return None
    cells = []
    for c in long_cells:
        d = c.doc()
        if c.ok:
            r = c.result["long"]
            if r.get("nonfinite_positions"):
                d["status"], d["error"] = "failed", f"{r['nonfinite_positions']} positions with non-finite logits"
                d["nonfinite_positions"] = int(r["nonfinite_positions"])
            d.update({"n_ctx": r["n_ctx"], "seconds": r["seconds"], "tokens": r["tokens"],
                      "nll_per_position": r["nll_per_position"], "kld_per_position": r["kld_per_position"],
                      "needle_hits": r["needle_hits"], "needle_answers": r["needle_answers"]})
        cells.append(d)
    info = prepared.probes.info
    return {"probes": info, "buckets": LM.bucket_names(prepared.n_ctx), "edges": LM.edges(prepared.n_ctx),
            "probes_sha256": prepared.sha256, "needles": [asdict(n) for n in prepared.probes.needles], "cells": cells}


def _evidence(cell_docs: list[dict], long: dict) -> dict:
    return collect({"cells": cell_docs, "task_cells": [], "rows": [], "flags": [], "long_context": long})


def flags(cell_docs: list[dict], long: dict | None) -> list[Flag]:
    """BROKEN where a cell's long windows gave non-finite logits, and where a cell's late-position KLD rises above its early KLD by more than its interval allows and by
    more than the early KLD itself and LM.RISE_FLOOR_NATS (a lost RoPE scaling: positions past the original context
    lose their meaning; quantization noise alone leaves the two buckets alike)."""
    if not long:
        return []
    out = [Flag("broken", d["variant"], d["runtime"],
                f"BROKEN: its logits are not finite (NaN or Inf) at {d['nonfinite_positions']:,} of "
                f"{d.get('tokens', 0) - len(d.get('nll_per_position') or []):,} positions of the long windows")
           for d in long["cells"] if d.get("nonfinite_positions")]
    evidence = _evidence(cell_docs, long)
    for (v, rt), cell in evidence.items():
        if cell.long_kld is None:
            continue
        names = LM.bucket_names(cell.long_ctx)
        where = f"positions {names[-1].replace('_', '–')} against {names[0].replace('_', '–')}"
        try:
            rise = metrics.estimate(LM.KLD_RISE, cell, None)
            early = metrics.estimate(LM.kld_mean_at(0, cell.long_ctx), cell, None)
        except LM.TooFewWindows:  # too few windows for an interval: the rule window by window
            lost = LM.windows_losing_positions(cell)
            if lost is not None:
                out.append(Flag("broken", v, rt, f"KLD at {where} rises by {lost} nats in every long window that "
                                "reaches them (each rise above its window's early KLD and "
                                f"{LM.WINDOW_RISE_NATS} nats): the model loses its positions in long context "
                                "(a RoPE setting lost in conversion?)"))
            continue
        except metrics.NotMeasured:
            continue
        bar = max(LM.RISE_FLOOR_NATS, early.value)
        if rise.ci_low > bar:
            late = metrics.estimate(LM.late_kld_mean(cell.long_ctx), cell, None)
            out.append(Flag("broken", v, rt,
                            f"KLD at {where}: {late.value:.3f} nats against {early.value:.3f} (rise {rise.value:.3f} "
                            f"[{rise.ci_low:.3f}, {rise.ci_high:.3f}], resampled by window): the model loses its "
                            "positions in long context (a RoPE setting lost in conversion?)"))
    return out


def attach_views(long: dict | None, evidence: dict) -> None:
    """The report's KLD-by-position curve and retrieval grid of each long cell, from the very per-position values the
    rows resample."""
    if not long:
        return
    for d in long["cells"]:
        ev = evidence.get((d["variant"], d["runtime"]))
        d["curve"] = LM.curve(ev) if ev is not None else None
        d["grid"] = LM.grid(ev, long["needles"]) if ev is not None else None
