"""matplotlib figures, returned as PNG bytes (embedded in the HTML as data URIs)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"fp16": "#1f77b4", "gguf-f16": "#17becf", "gguf-q4_k_m": "#ff7f0e", "awq-int4": "#2ca02c"}
_EXTRA = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#843c39"]


def color(variant: str) -> str:
    """A fixed color for the default variants; others get one from a palette, stable by name."""
    if variant in COLORS:
        return COLORS[variant]
    import zlib

    return _EXTRA[zlib.crc32(variant.encode()) % len(_EXTRA)]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _finish(ax, xlabel: str | None, ylabel: str, title: str, grid_axis: str = "both", legend: bool = False) -> None:
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis=grid_axis, alpha=0.3)
    if legend:
        ax.legend(fontsize=8)


def _metric(results, v, rt, metric):
    for r in results["rows"]:
        if r["variant"] == v and r["runtime"] == rt and r["metric"] == metric:
            return r
    return None


def _ok_cells(results):
    return [c for c in results["cells"] if c["status"] == "ok"]


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both size and loss (smaller and better), by size."""
    best, out = float("inf"), []
    for x, y in sorted(points):
        if y < best:
            out.append((x, y))
            best = y
    return out


def quality_vs_size(results, limits: dict | None = None, verdicts: dict | None = None) -> bytes | None:
    """Pareto view: size on disk (MB) against the paired loss vs fp16 (ΔPPL %, mean KLD; 95% CIs over the shared
    windows), each variant × runtime a labelled point, the frontier of what no smaller variant beats drawn, the
    policy's limit dashed, failing (or BROKEN) variants marked with a red cross."""
    cells = [c for c in results["cells"] if c["status"] in ("ok", "broken") and c.get("role", "measured") == "measured"]
    runtimes_of: dict[str, set] = {}
    for c in cells:
        runtimes_of.setdefault(c["variant"], set()).add(c["runtime"])
    verdicts = verdicts or {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    marker = {"transformers": "o", "llama.cpp": "s", "vllm": "^", "transformers-compiled": "D"}
    drawn = False
    for ax, metric, key, title, ylabel in (
            (axes[0], "ppl_increase_pct", "max_ppl_increase_pct", "PPL increase vs fp16 (paired)", "ΔPPL, % (95% CI)"),
            (axes[1], "kld_mean", "max_kld_mean", "KL divergence vs fp16", "mean KLD, nats (95% CI)")):
        pts = []
        for c in cells:
            s_row = _metric(results, c["variant"], c["runtime"], "size_bytes")
            row = _metric(results, c["variant"], c["runtime"], metric)
            if not s_row or not row or row["value"] is None:
                continue
            x, y = s_row["value"] / 1e6, row["value"]
            bad = c["status"] == "broken" or verdicts.get(c["variant"]) == "fail"
            err = None if row["ci_low"] is None else [[max(0.0, y - row["ci_low"])], [max(0.0, row["ci_high"] - y)]]
            ax.errorbar([x], [y], yerr=err, fmt=marker.get(c["runtime"], "o"), capsize=4, color=color(c["variant"]),
                        markersize=7, markerfacecolor="white" if bad else color(c["variant"]))
            if bad:
                ax.plot([x], [y], "x", color="#c00", markersize=12, markeredgewidth=2)
            label = c["variant"] + (f" × {c['runtime']}" if len(runtimes_of[c["variant"]]) > 1 else "")
            pts.append((x, y, label + (" (fails)" if bad else "")))
        if not pts:
            continue
        drawn = True
        ys = sorted(p[1] for p in pts)
        span = (ys[-1] - min(0.0, ys[0])) or 1.0
        for i, (x, y, label) in enumerate(sorted(pts)):
            dy = (0.04 + 0.05 * (i % 3)) * span
            ax.annotate(label, (x, y), xytext=(x, y + dy), fontsize=8, ha="center",
                        arrowprops={"arrowstyle": "-", "color": "#999", "lw": 0.6})
        front = _frontier([(x, y) for x, y, lab in pts if "(fails)" not in lab])
        if len(front) > 1:
            fx, fy = zip(*front)
            ax.step(fx, fy, where="post", color="#555", linewidth=1, linestyle="-", alpha=0.6, label="frontier")
        if limits and limits.get(key) is not None:
            ax.axhline(limits[key], color="#c00", linestyle="--", linewidth=1, label=f"policy limit {limits[key]:g}")
        ax.axhline(0, color="#999", linewidth=0.6)
        xs = [p[0] for p in pts]
        ax.set_xlim(0, max(xs) * 1.12)
        ax.set_ylim(min(0.0, ys[0]) - 0.05 * span, ys[-1] + 0.25 * span)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        _finish(ax, "size on disk, MB", ylabel, title)
        ax.legend(fontsize=8, loc="upper right")
    if not drawn:
        plt.close(fig)
        return None
    return _png(fig)


def accuracy_deltas(results) -> bytes | None:
    """Paired accuracy change vs fp16 per task (95% CI over documents), one bar per variant × runtime."""
    rows = [r for r in results["rows"] if r["metric"].endswith(":acc_delta_vs_fp16")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.6))
    labels = []
    for i, r in enumerate(rows):
        y = 100 * r["value"]
        err = None if r["ci_low"] is None else [[y - 100 * r["ci_low"]], [100 * r["ci_high"] - y]]
        ax.errorbar([i], [y], yerr=err, fmt="o", capsize=4, color=color(r["variant"]))
        labels.append(f"{r['metric'].split(':')[0]}\n{r['variant']}\n{r['runtime']}")
    ax.axhline(0, color="#999", linewidth=0.6)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=6)
    _finish(ax, None, "accuracy change, points (95% CI)", "Downstream accuracy vs fp16 (paired by document)", "y")
    return _png(fig)


def speed_bars(results) -> bytes | None:
    cells = [c for c in _ok_cells(results) if c.get("speed")]
    if not cells:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(max(9.0, 2.0 * len(cells)), 3.8))
    # long names wrap at their hyphens, so neighbouring labels never overlap
    labels = [f"{c['variant']}\n{c['runtime'].replace('-', '-' + chr(10))}" for c in cells]
    for ax, name in zip(axes, ("prefill", "decode")):
        vals, lo, hi = [], [], []
        for c in cells:
            r = _metric(results, c["variant"], c["runtime"], f"{name}_tok_s")
            vals.append(r["value"])
            lo.append(r["value"] - r["ci_low"])
            hi.append(r["ci_high"] - r["value"])
        ax.bar(range(len(cells)), vals, yerr=[lo, hi], capsize=3,
               color=[color(c["variant"]) for c in cells])
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels(labels, fontsize=7)
        sp = cells[0]["speed"]
        _finish(ax, None, "tokens/s (median; bars: min–max)",
                f"{name} ({sp['prefill_tokens'] if name == 'prefill' else sp['decode_tokens']} tokens, batch 1)", "y")
    return _png(fig)


def window_ppl_distribution(results) -> bytes | None:
    cells = [c for c in results["cells"] if c.get("window_ppl")]
    if not cells:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    ax.boxplot([c["window_ppl"] for c in cells], showmeans=True)
    ax.set_xticks(range(1, len(cells) + 1))
    ax.set_xticklabels([f"{c['variant']}\n{c['runtime']}" + ("\nBROKEN" if c["status"] == "broken" else "") for c in cells], fontsize=7)
    ax.set_yscale("log")
    _finish(ax, None, "per-window perplexity", "Perplexity per window (same windows for every cell)", "y")
    return _png(fig)


def kld_distribution(results) -> bytes | None:
    """Percentiles 0..100 of each cell's per-token KLD as results.json holds them (harness.metrics.kld_curve:
    the values the KLD rows and the gate bootstrap)."""
    cells = [c for c in results["cells"] if c.get("kld_percentiles")]
    if not cells:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for c in cells:
        pct = np.maximum(np.asarray(c["kld_percentiles"], dtype=float), 1e-9)
        ax.plot(np.arange(len(pct)), pct, label=f"{c['variant']} × {c['runtime']}", color=color(c["variant"]),
                linestyle="-" if c["runtime"] == "transformers" else "--")
    ax.set_yscale("log")
    _finish(ax, "percentile of scored tokens", "KL(fp16 || variant), nats", "Per-token KL divergence vs fp16", legend=True)
    return _png(fig)


def throughput_vs_batch(results) -> bytes | None:
    """Serving sweep (vLLM): output tok/s against batch size, one line per variant × runtime."""
    cells = [c for c in _ok_cells(results) if c.get("serving")]
    if not cells:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for c in cells:
        sv = sorted(c["serving"], key=lambda d: d["batch"])
        ax.plot([d["batch"] for d in sv], [d["output_tok_s"] for d in sv], marker="o",
                color=color(c["variant"]), label=f"{c['variant']} × {c['runtime']} ({c.get('compute_dtype')})")
    ax.set_xscale("log", base=2)
    _finish(ax, "batch (concurrent requests)", "output tokens/s", "Throughput vs batch", legend=True)
    return _png(fig)


def generation_survival(results) -> bytes | None:
    """Share of prompts whose greedy continuation is still identical to fp16's after t tokens, one line per
    variant × runtime (fp16 × transformers, the reference, is 1 throughout and not drawn), as results.json
    holds it."""
    gen = results.get("generation") or {}
    n_new = gen.get("n_new")
    ref = gen.get("reference") or {}
    cells = [c for c in _ok_cells(results) if (c.get("generation") or {}).get("survival") is not None
             and (c["variant"], c["runtime"]) != (ref.get("variant"), ref.get("runtime"))]
    if not n_new or not cells:
        return None
    fig, ax = plt.subplots(figsize=(11, 4.2))
    t = np.arange(n_new + 1)
    styles = ["-", "--", ":", "-."]
    runtimes = sorted({c["runtime"] for c in cells})
    for c in cells:
        s = np.asarray(c["generation"]["survival"], dtype=float)  # harness.generation.survival, from results.json
        ax.step(t, 100 * s, where="post", color=color(c["variant"]), linestyle=styles[runtimes.index(c["runtime"]) % 4],
                linewidth=2, label=f"{c['variant']} × {c['runtime']} ({100 * s[-1]:.0f}% at {n_new})")
    ax.set_xlim(0, n_new)
    ax.set_ylim(0, 102)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _finish(ax, "tokens generated", "% of prompts identical to fp16", "Greedy generations still identical to fp16 × transformers")
    return _png(fig)


def sensitivity_heatmap(results) -> bytes | None:
    """KLD increase when one tensor group alone is at its lowest type (the rest Q8_0): blocks × {attention,
    feed-forward}, with the token embedding and output layer beside them."""
    sens = results.get("sensitivity") or {}
    rows = [r for r in sens.get("groups", []) if "kld_increase" in r]
    blocks = sorted({r["block"] for r in rows if r.get("block") is not None})
    if not blocks:
        return None
    kinds = ["attn", "ffn"]
    grid = np.full((len(kinds), len(blocks)), np.nan)
    for r in rows:
        if r.get("block") is not None:
            grid[kinds.index(r["kind"]), blocks.index(r["block"])] = r["kld_increase"][0]
    others = [r for r in rows if r.get("block") is None]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 3.2), gridspec_kw={"width_ratios": [6, 1]})
    im = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0)
    ax.set_yticks(range(len(kinds)), ["attention", "feed-forward"])
    ax.set_xticks(range(len(blocks)), [str(b) for b in blocks], fontsize=7)
    ax.set_xlabel("block")
    fig.colorbar(im, ax=ax, label="KLD increase, nats")
    ax.set_title(f"KLD added by one tensor group at its lowest type (rest Q8_0; base KLD {sens.get('base_kld', 0):.4f})")
    if others:
        names = [r["group"] for r in others]
        vals = [r["kld_increase"][0] for r in others]
        err = [[max(0.0, v - r["kld_increase"][1]) for v, r in zip(vals, others)],
               [max(0.0, r["kld_increase"][2] - v) for v, r in zip(vals, others)]]
        ax2.bar(range(len(vals)), vals, yerr=err, color="#843c39", capsize=3)
        ax2.set_xticks(range(len(vals)), names, rotation=30, fontsize=8)
        ax2.set_title("embedding / output", fontsize=9)
        ax2.grid(axis="y", alpha=0.3)
    else:
        ax2.axis("off")
    return _png(fig)
