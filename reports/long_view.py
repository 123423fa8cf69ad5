"""The report's long-context section: KLD by position, retrieval heat maps and their table, all read from
results.json's long_context section and rows (harness/long_metrics.py defines every figure)."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from core.names import variant_key
from reports.plots import _finish, _png, color, plt
from reports.tables import _ci as ci


def _row(results, v, rt, metric):
    return next((r for r in results["rows"] if (r["variant"], r["runtime"], r["metric"]) == (v, rt, metric)), None)


def _cells(results) -> list[dict]:
    lc = results.get("long_context") or {}
    key = variant_key(results)
    return sorted([c for c in lc.get("cells", []) if c["status"] == "ok"], key=lambda c: (key(c["variant"]), c["runtime"]))


def _label(b: str) -> str:
    return b.replace("_", "–")


def kld_by_position(results) -> bytes | None:
    """Left: each block's mean KLD against fp16 over the windows that reach it; right: each bucket's mean with its
    interval (the rows' figures). One line per variant × runtime."""
    lc = results.get("long_context") or {}
    cells = [c for c in _cells(results) if c.get("curve")]
    if not cells:
        return None
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    styles = ["-", "--", ":", "-."]
    runtimes = sorted({c["runtime"] for c in cells})
    buckets = lc["buckets"]
    for c in cells:
        cv = c["curve"]
        ax.plot(cv["position"], np.maximum(cv["kld"], 1e-7), color=color(c["variant"]), marker=".",
                linestyle=styles[runtimes.index(c["runtime"]) % 4], linewidth=1.8, label=f"{c['variant']} × {c['runtime']}")
    for e in lc["edges"][1:-1]:
        ax.axvline(e, color="#999", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlim(0, lc["edges"][-1])
    _finish(ax, "position in the window (tokens)", "mean KLD vs fp16 (nats, log)", "KLD by position (blocks of positions)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)  # below: no curve hidden
    width = 0.8 / len(cells)
    for i, c in enumerate(cells):
        xs, ys, lo, hi = [], [], [], []
        for j, b in enumerate(buckets):
            r = _row(results, c["variant"], c["runtime"], f"long_kld_mean_{b}")
            if r is None:
                continue
            xs.append(j + (i - (len(cells) - 1) / 2) * width)
            ys.append(max(r["value"], 1e-7))
            lo.append(max(r["value"] - (r["ci_low"] if r["ci_low"] is not None else r["value"]), 0))
            hi.append(max((r["ci_high"] if r["ci_high"] is not None else r["value"]) - r["value"], 0))
        ax2.errorbar(xs, ys, yerr=[np.minimum(lo, np.asarray(ys) * 0.999), hi], fmt="o", color=color(c["variant"]),
                     capsize=3, label=f"{c['variant']} × {c['runtime']}")
    ax2.set_yscale("log")
    ax2.set_xticks(range(len(buckets)), [_label(b) for b in buckets])
    _finish(ax2, "positions", "mean KLD [95% CI] (nats, log)", "KLD per position bucket", grid_axis="y")
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: no point hidden
    return _png(fig)


def retrieval_maps(results) -> bytes | None:
    """Facts retrieved per window length × depth, one panel per variant × runtime (retrieved / planted in each)."""
    cells = [c for c in _cells(results) if c.get("grid")]
    if not cells:
        return None
    n = len(cells)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.3 * rows), squeeze=False)
    im = None
    for k, (ax, c) in enumerate(zip(axes.flat, cells)):
        g = c["grid"]
        got, planted = np.asarray(g["retrieved"], float), np.asarray(g["planted"], float)
        share = np.where(planted > 0, got / np.maximum(planted, 1), np.nan)
        im = ax.imshow(share, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        for i in range(share.shape[0]):
            for j in range(share.shape[1]):
                if planted[i, j]:
                    ax.text(j, i, f"{int(got[i, j])}/{int(planted[i, j])}", ha="center", va="center", fontsize=9,
                            color="white" if share[i, j] < 0.6 else "black")
        ax.set_xticks(range(len(g["depths"])), [f"{d}%" for d in g["depths"]])
        ax.set_yticks(range(len(g["lengths"])), [str(x) for x in g["lengths"]])
        ax.set_xlabel("depth of the fact")
        if k % cols == 0:
            ax.set_ylabel("window tokens")
        ax.set_title(f"{c['variant']} × {c['runtime']}", fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.subplots_adjust(hspace=0.45, wspace=0.3)  # a second row's panel titles clear the first row's axis labels
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), label="share retrieved", shrink=0.8)
    fig.suptitle("Planted facts retrieved (greedy answer exact), per window length × depth", y=1.03)
    buf = __import__("io").BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _ci(r, fmt: str, scale: float = 1.0) -> str:
    """A row's value [interval] (tables._ci); fmt "kld": small KLDs in powers of ten (they span 1e-6 to 1)."""
    if r is None:
        return "—"
    if fmt == "kld":
        fmt = ".4f" if abs(r["value"]) >= 1e-3 else ".1e"
    lo, hi = r["ci_low"], r["ci_high"]
    return ci(r["value"] * scale, None if lo is None else lo * scale, None if hi is None else hi * scale, fmt)


def long_frame(results) -> pd.DataFrame | None:
    lc = results.get("long_context") or {}
    cells = [c for c in lc.get("cells", [])]
    if not cells:
        return None
    buckets = lc["buckets"]
    key = variant_key(results)
    status = {(c["variant"], c["runtime"]): c["status"] for c in results["cells"]}
    out = []
    for c in sorted(cells, key=lambda c: (key(c["variant"]), c["runtime"])):
        v, rt = c["variant"], c["runtime"]
        d = {"variant": v, "runtime": rt, "status": status.get((v, rt), c["status"]) if c["status"] == "ok" else c["status"]}
        for b in buckets:
            d[f"KLD {_label(b)}"] = _ci(_row(results, v, rt, f"long_kld_mean_{b}"), "kld")
        d[f"ΔPPL % {_label(buckets[-1])}"] = _ci(_row(results, v, rt, f"long_ppl_increase_pct_{buckets[-1]}"), "+.2f")
        d["KLD rise (late − early)"] = _ci(_row(results, v, rt, "long_kld_rise"), "kld")
        d["facts retrieved %"] = _ci(_row(results, v, rt, "needle_accuracy"), ".0f", 100)
        d["drop vs fp16, pts"] = _ci(_row(results, v, rt, "needle_accuracy_drop"), "+.0f")
        if c["status"] != "ok":
            d["KLD " + _label(buckets[0])] = c.get("error") or c["status"]
        out.append(d)
    return pd.DataFrame(out)


def section(results, img, table) -> str:
    """The section's HTML (img: draw -> <img>, table: DataFrame -> <table>, both html.py's)."""
    lc = results.get("long_context")
    frame = long_frame(results)
    if not lc or frame is None:
        return ""
    p = lc["probes"]
    return ("<h2>Long context: KLD by position and retrieval at depth</h2>" + table(frame)
            + img(kld_by_position, "KLD by position", results) + img(retrieval_maps, "retrieval heat maps", results)
            + f"<p class='note'>{p['n_windows']} long windows of {', '.join(map(str, p['lengths']))} tokens "
            f"({p['per_length']} per length) of {html.escape(results['windows']['text_file'])}, whole articles joined from a "
            f"seeded one (seed {p['seed']}), with {p['n_needles']} facts planted (“{html.escape(p['fact'])}”, up to "
            f"{p['needles_per_window']} per window at depths spread over 10–90% of the text) and a question for each at the "
            "end. Each window is one forward pass with the runtime's context set to the longest window (llama.cpp's n_ctx, "
            "vLLM's max_model_len), the same token ids for every runtime. Every position's KLD is taken against fp16 × "
            "transformers' top-k; positions are grouped in blocks of 1/32 of the longest window, and a bucket's figure is "
            "its blocks' mean, with a bootstrap over blocks (paired with fp16's blocks for ΔPPL; not validated by a "
            "coverage study). A fact counts as retrieved when the runtime's own top token is the value's token at every "
            "one of its positions: exactly what greedy decoding after “… is” writes. Retrieval intervals resample whole "
            "windows. A cell whose late KLD rises above its early KLD by more than the interval allows, the early KLD "
            "itself and 0.05 nats is flagged BROKEN (a position encoding lost in conversion).</p>")
