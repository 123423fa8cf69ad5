"""matplotlib figures, returned as PNG bytes (embedded in the HTML as data URIs)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"fp16": "#1f77b4", "gguf-f16": "#17becf", "gguf-q4_k_m": "#ff7f0e", "awq-int4": "#2ca02c"}


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


def quality_vs_size(results) -> bytes | None:
    cells = _ok_cells(results)
    if not cells:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for c in cells:
        p = _metric(results, c["variant"], c["runtime"], "ppl")
        s = _metric(results, c["variant"], c["runtime"], "size_bytes")
        if not p or not s:
            continue
        x = s["value"] / 1e6
        err = None
        if p["ci_low"] is not None:
            err = [[p["value"] - p["ci_low"]], [p["ci_high"] - p["value"]]]
        marker = {"transformers": "o", "llama.cpp": "s", "vllm": "^"}.get(c["runtime"], "D")
        ax.errorbar([x], [p["value"]], yerr=err, fmt=marker, capsize=4, color=COLORS.get(c["variant"], "gray"),
                    label=f"{c['variant']} × {c['runtime']}")
    _finish(ax, "size on disk (MB)", "perplexity (95% CI over windows)", "Quality vs size", legend=True)
    return _png(fig)


def speed_bars(results) -> bytes | None:
    cells = [c for c in _ok_cells(results) if c.get("speed")]
    if not cells:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    labels = [f"{c['variant']}\n{c['runtime']}" for c in cells]
    for ax, name in zip(axes, ("prefill", "decode")):
        vals, lo, hi = [], [], []
        for c in cells:
            r = _metric(results, c["variant"], c["runtime"], f"{name}_tok_s")
            vals.append(r["value"])
            lo.append(r["value"] - r["ci_low"])
            hi.append(r["ci_high"] - r["value"])
        ax.bar(range(len(cells)), vals, yerr=[lo, hi], capsize=3,
               color=[COLORS.get(c["variant"], "gray") for c in cells])
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
    cells = [c for c in results["cells"] if c.get("kld_percentiles")]
    if not cells:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for c in cells:
        pct = np.maximum(np.asarray(c["kld_percentiles"], dtype=float), 1e-9)
        ax.plot(np.arange(len(pct)), pct, label=f"{c['variant']} × {c['runtime']}", color=COLORS.get(c["variant"], "gray"),
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
                color=COLORS.get(c["variant"], "gray"), label=f"{c['variant']} × {c['runtime']} ({c.get('compute_dtype')})")
    ax.set_xscale("log", base=2)
    _finish(ax, "batch (concurrent requests)", "output tokens/s", "Throughput vs batch", legend=True)
    return _png(fig)
