"""Summary tables from results.json rows."""
from __future__ import annotations

import math
import re

import pandas as pd

from core.names import variant_key


def _ci(v, lo, hi, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    s = format(v, fmt)
    if lo is not None and hi is not None:
        s += f" [{format(lo, fmt)}, {format(hi, fmt)}]"
    return s


def _spread(v, lo, hi, fmt: str, scale: float = 1.0) -> str:
    """A speed figure with the range of its runs: "27.5 (25.0–32.5)"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    s = format(v * scale, fmt)
    if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        s += f" ({format(lo * scale, fmt)}–{format(hi * scale, fmt)})"
    return s


def kld_method_short(method: str | None) -> str:
    """"exact", "top-256 bound" or "sparse top-20 bound": how a cell's KLD was taken, in a table cell."""
    if not method:
        return "—"
    if method.startswith("exact"):
        return "exact"
    m = re.search(r"top-(\d+)", method)
    return ("sparse " if method.startswith("sparse") else "") + (f"top-{m.group(1)} bound" if m else "bound")


def summary_frame(results: dict) -> pd.DataFrame:
    """One row per variant × runtime, with the figures a reader compares."""
    rows = pd.DataFrame(results["rows"])
    status = {(c["variant"], c["runtime"]): c["status"] for c in results["cells"]}
    out = []
    order = variant_key(results)
    keys = sorted(status, key=lambda k: (order(k[0]), k[1]))
    for v, rt in keys:
        sub = rows[(rows.variant == v) & (rows.runtime == rt)] if len(rows) else rows

        def get(metric):
            m = sub[sub.metric == metric]
            if m.empty:
                return None, None, None
            r = m.iloc[0]
            return r.value, r.ci_low, r.ci_high

        st = status[(v, rt)]
        rec = {"variant": v, "runtime": rt, "status": st}
        if st in ("failed", "unsupported"):
            out.append(rec)
            continue
        rec["PPL [95% CI]"] = _ci(*get("ppl"), ".3f")
        inc = get("ppl_increase_pct")
        rec["ΔPPL vs fp16 [paired CI]"] = (
            "—" if inc[0] is None else f"{inc[0]:+.2f}% [{inc[1]:+.2f}, {inc[2]:+.2f}]" if inc[1] is not None
            else f"{inc[0]:+.2f}%")
        rec["KLD mean [CI]"] = _ci(*get("kld_mean"), ".4f")
        rec["KLD p99 [CI]"] = _ci(*get("kld_p99"), ".4f")
        method = next((c.get("kld_method") for c in results["cells"] if (c["variant"], c["runtime"]) == (v, rt)), None)
        rec["KLD method"] = kld_method_short(method)
        t = get("top1_agreement")
        rec["top-1 agree [CI]"] = "—" if t[0] is None else _ci(*(100 * x if x is not None else None for x in t), ".2f") + " %"
        same = get("gen_identical_at_32")
        if same[0] is not None:
            rec["gen same@32 [CI]"] = _ci(*(100 * x if x is not None else None for x in same), ".0f") + " %"
        loops = get("gen_loop_rate_increase")
        if loops[0] is not None:
            rec["loops Δ pts [CI]"] = f"{loops[0]:+.1f} [{loops[1]:+.1f}, {loops[2]:+.1f}]"
        late = ((results.get("long_context") or {}).get("buckets") or [None])[-1]
        if late:
            k = get(f"long_kld_mean_{late}")
            if k[0] is not None:
                rec[f"KLD at {late.replace('_', '–')} [CI]"] = _ci(*k, ".4f" if k[0] >= 1e-3 else ".1e")
            facts = get("needle_accuracy")
            if facts[0] is not None:
                rec["facts retrieved [CI]"] = _ci(*(100 * x for x in facts), ".0f") + " %"
        follow = get("if_prompt_strict")
        if follow[0] is not None:
            rec["instructions followed [CI]"] = _ci(*(100 * x for x in follow), ".0f") + " %"
        size = get("size_bytes")[0]
        rec["size MB"] = "—" if size is None else f"{size / 1e6:.1f}"
        bpw = get("bits_per_weight")[0]
        rec["bpw"] = "—" if bpw is None else f"{bpw:.2f}"
        rss = get("peak_rss_bytes")[0]
        rec["peak RSS MB"] = "—" if rss is None else f"{rss / 1e6:.0f}"
        pre, dec = get("prefill_tok_s"), get("decode_tok_s")
        rec["prefill tok/s"] = _spread(*pre, ".1f" if pre[0] is None or pre[0] < 1000 else ".0f")
        rec["decode tok/s"] = _spread(*dec, ".1f")
        cont = next(((c.get("speed") or {}).get("contention") for c in results["cells"]
                     if (c["variant"], c["runtime"]) == (v, rt)), None)
        if cont:
            rec["machine quiet?"] = (f"NO: others used {cont['other_cores']:.2f} cores" if cont["contended"]
                                     else f"yes ({cont['other_cores']:.2f} cores by others)")
        roof = get("decode_roofline_pct")[0]
        rec["decode % of roofline"] = "—" if roof is None else f"{roof:.0f}%"
        for metric in sorted({m for m in rows.metric if m.startswith("decode_tok_s_b")} if len(rows) else set(),
                             key=lambda m: int(m.rsplit("b", 1)[1])):
            rec[f"decode tok/s batch {metric.rsplit('b', 1)[1]}"] = _spread(*get(metric), ".1f")
        ttft = get("ttft_s")
        if ttft[0] is not None:
            rec["TTFT ms (512)"] = _spread(*ttft, ".1f", scale=1e3)
        vram = get("peak_vram_bytes")[0]
        if vram is not None:
            rec["peak VRAM MB"] = f"{vram / 1e6:.0f}"
        if st == "broken":
            rec["ΔPPL vs fp16 [paired CI]"] = "BROKEN"
        out.append(rec)
    df = pd.DataFrame(out).fillna("—")
    # columns with nothing measured in this run (e.g. quality in a performance-only run) are left out
    keep = [c for c in df.columns if c in ("variant", "runtime", "status") or (df[c] != "—").any()]
    return df[keep]


def kernel_check_frame(results: dict) -> pd.DataFrame | None:
    checks = results.get("kernel_checks") or []
    if not checks:
        return None
    return pd.DataFrame([{
        "quantized runtime": f"{c['variant']} × {c['runtime']}", "reference": c["reference"], "positions": c["positions"],
        "max |Δlogit|": f"{c['max_abs_err']:.4f}", "mean |Δlogit|": f"{c['mean_abs_err']:.4f}",
        "mean |Δ| / mean |logit|": f"{100 * c['rel_mean_err']:.2f}%" if c["rel_mean_err"] is not None else "—",
        "top-1 agree": f"{100 * c['top1_agreement']:.1f}%",
        "top-1 agree (clear leader)": "—" if c["top1_agreement_clear"] is None else
        f"{100 * c['top1_agreement_clear']:.1f}% of {c['clear_positions']}",
        "quantization's own effect": "—" if c.get("quantization_rel_err") is None else
        f"{100 * c['quantization_rel_err']:.1f}% (ratio {c['err_ratio']:.2f})",
        "verdict": ("ok" if c["ok"] else "BROKEN") + (f": {c['rule']}" if c.get("rule") else ""),
    } for c in checks])


def decode_detail_frame(results: dict) -> pd.DataFrame | None:
    """GPU decode, per torch cell: the compiled step's check against eager, compile time, and the profile
    of one decoded token (kernels, GPU busy time against the measured time, time per layer)."""
    out = []
    for c in results["cells"]:
        chk, comp, prof = c.get("decode_check"), c.get("compile_seconds"), c.get("decode_profile")
        if not (chk or comp or prof):
            continue
        rec = {"cell": f"{c['variant']} × {c['runtime']}", "compute": c.get("compute_dtype") or "—"}
        rec["compiled step vs eager"] = ("—" if not chk else
                                         f"{100 * chk['rel_mean_err']:.2f}% of mean |logit|, top-1 {100 * chk['top1_agreement']:.0f}%")
        rec["first decode loop s (compile)"] = "—" if not comp else ", ".join(f"b{b}: {v:.1f}" for b, v in comp.items())
        if prof and prof.get("error"):
            rec["kernels / token"] = f"profile failed: {prof['error']}"
        elif prof:
            rec["kernels / token"] = f"{prof['kernels_per_token']:.0f}"
            rec["GPU busy ms / token"] = f"{prof['gpu_busy_ms_per_token']:.3f}"
            rec["wall ms / token"] = f"{prof.get('wall_ms_per_token', float('nan')):.3f}"
            rec["busy % of wall"] = f"{prof.get('gpu_busy_pct_of_wall', float('nan')):.0f}%"
            rec["per layer ms"] = f"{prof['per_layer_ms']:.4f}" if prof.get("per_layer_ms") is not None else "—"
            rec["output layer ms"] = f"{prof['largest_kernel_ms']:.4f}"
            rec["by kind (ms / token)"] = "; ".join(f"{k}: {v['ms']:.3f} ({v['kernels']:.0f})"
                                                    for k, v in sorted(prof["by_kind"].items(), key=lambda kv: -kv[1]["ms"]))
        out.append(rec)
    return pd.DataFrame(out).fillna("—") if out else None


def terminal_table(results: dict) -> str:
    df = summary_frame(results)
    cols = [c for c in ["variant", "runtime", "status", "PPL [95% CI]", "ΔPPL vs fp16 [paired CI]", "KLD mean [CI]", "KLD method",
                        "top-1 agree [CI]", "gen same@32 [CI]", "loops Δ pts [CI]"]
            + [c for c in df.columns if c.startswith("KLD at ")] + ["facts retrieved [CI]"]
            + ["size MB", "bpw", "prefill tok/s", "decode tok/s"] if c in df.columns]
    return df[cols].to_string(index=False)


def serving_frame(results: dict) -> pd.DataFrame | None:
    """vLLM's serving sweep: one row per variant × runtime × batch."""
    out = []
    for c in results["cells"]:
        for sv in c.get("serving") or []:
            out.append({"variant": c["variant"], "runtime": c["runtime"], "dtype": c.get("compute_dtype"),
                        "batch": sv["batch"], "in/out tokens": f"{sv['input_tokens']}/{sv['output_tokens']}",
                        "output tok/s": f"{sv['output_tok_s']:.1f}",
                        "TTFT p50 / p90 ms": f"{1e3 * sv['ttft_p50_s']:.0f} / {1e3 * sv['ttft_p90_s']:.0f}",
                        "ITL p50 / p90 ms": f"{1e3 * sv['itl_p50_s']:.1f} / {1e3 * sv['itl_p90_s']:.1f}"})
    return pd.DataFrame(out) if out else None


def accuracy_frame(results: dict) -> pd.DataFrame | None:
    """lm-eval metrics per variant × runtime × task, value ± 95% CI, and the change vs fp16."""
    rows = [r for r in results["rows"] if r["unit"] == "task"]
    if not rows:
        return None
    by = {(r["variant"], r["runtime"], r["metric"]): r for r in rows}
    out = []
    order = variant_key(results)
    for (v, rt, metric), r in sorted(by.items(), key=lambda kv: (kv[0][2], order(kv[0][0]), kv[0][1])):
        if metric.endswith("_delta_vs_fp16"):
            continue
        task, name = metric.split(":", 1)
        pct = name in ("acc", "acc_norm")
        scale, unit = (100.0, "%") if pct else (1.0, "")
        val = f"{scale * r['value']:.2f}{unit}"
        if r["ci_low"] is not None:
            val += f" [{scale * r['ci_low']:.2f}, {scale * r['ci_high']:.2f}]"
        d = by.get((v, rt, metric + "_delta_vs_fp16"))
        delta = "—"
        if d is not None:
            delta = f"{scale * d['value']:+.2f}{' pts' if pct else ''}"
            if d["ci_low"] is not None:
                delta += f" [{scale * d['ci_low']:+.2f}, {scale * d['ci_high']:+.2f}]"
        out.append({"task": task, "metric": name, "variant": v, "runtime": rt, "value [95% CI]": val, "Δ vs fp16 [95% CI]": delta})
    return pd.DataFrame(out)


# llama-perplexity --kl-divergence's statistics, as its users read them
KLD_DETAIL = (("kld_mean", "mean KLD", 1, ".4f"), ("kld_median", "median", 1, ".4f"), ("kld_p90", "p90", 1, ".4f"),
              ("kld_p99", "p99", 1, ".3f"), ("kld_p999", "p99.9", 1, ".3f"), ("kld_max", "max", 1, ".2f"),
              ("delta_p_mean", "mean Δp %", 100, "+.2f"), ("delta_p_rms", "RMS Δp %", 100, ".2f"),
              ("delta_p_p1", "Δp p1 %", 100, "+.1f"), ("delta_p_p99", "Δp p99 %", 100, "+.1f"),
              ("top1_agreement", "same top p %", 100, ".2f"), ("cor_ln_ppl", "Cor(ln PPL) %", 100, ".2f"))


def kld_detail_frame(results: dict) -> pd.DataFrame | None:
    """Per cell: the KLD distribution, Δp and the correlation of per-token ln PPL with fp16's, each with its
    95% interval (harness/metrics.py)."""
    by = {(r["variant"], r["runtime"], r["metric"]): r for r in results["rows"]}
    out = []
    order = variant_key(results)
    for c in sorted(results["cells"], key=lambda c: (order(c["variant"]), c["runtime"])):
        if (c["variant"], c["runtime"], "kld_mean") not in by:
            continue
        rec = {"variant": c["variant"], "runtime": c["runtime"], "status": c["status"],
               "KLD method": kld_method_short(c.get("kld_method"))}
        for metric, label, scale, fmt in KLD_DETAIL:
            r = by.get((c["variant"], c["runtime"], metric))
            if r is None or r["value"] is None:
                rec[label] = "—"
                continue
            lo, hi = (None, None) if r["ci_low"] is None else (scale * r["ci_low"], scale * r["ci_high"])
            rec[label] = _ci(scale * r["value"], lo, hi, fmt)
        out.append(rec)
    return pd.DataFrame(out) if out else None
