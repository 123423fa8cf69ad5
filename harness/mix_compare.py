"""Each gguf-mix variant against the stock variants it is sized after: the difference of mean KLD and of ΔPPL (vs
fp16), both measured on the same windows, so the difference is paired (one resample of articles for both), with
its 95% interval from the same bootstrap as every other figure (harness/metrics)."""
from __future__ import annotations

from harness import metrics as M


def _against(mix: str, variants: list[str]) -> list[str]:
    if "@" not in mix:
        return []
    target = mix.split("@", 1)[1]
    base = target[: -len("-imatrix")] if target.endswith("-imatrix") else target
    return [v for v in (base, base + "-imatrix") if v in variants]


def comparisons(evidence: dict, clusters, sizes: dict[str, float]) -> list[dict]:
    """One entry per (mix, stock variant) pair measured on the same runtime."""
    try:
        ref = M.reference_cell(evidence)
    except M.NotMeasured:
        return []
    variants = sorted({v for v, _ in evidence})
    out = []
    for (v, rt), cell in sorted(evidence.items()):
        if not v.startswith("gguf-mix") or cell.status != "ok":
            continue
        for other in _against(v, variants):
            o = evidence.get((other, rt))
            if o is None or o.status != "ok":
                continue
            entry = {"mix": v, "against": other, "runtime": rt, "mix_mb": sizes.get(v, 0) / 1e6,
                     "against_mb": sizes.get(other, 0) / 1e6}
            for q in (M.KLD_MEAN, M.PPL_INCREASE):
                try:
                    # mix − stock, both against fp16 on the same windows: metrics.change, paired
                    d = M.change(q, (cell, ref), (o, ref), (clusters, clusters))
                    mine, theirs = M.estimate(q, cell, ref, clusters), M.estimate(q, o, ref, clusters)
                except M.NotMeasured:
                    continue
                entry[q.metric] = {"mix": mine.value, "against": theirs.value,
                                   "difference": [d.value, d.ci_low, d.ci_high],
                                   "ratio": mine.value / theirs.value if theirs.value else None}
            out.append(entry)
    return out
