"""One self-contained report.html: inline CSS, images as data URIs, no network needed."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from reports import instruct_view, long_view, plots, profile_view
from reports.generation_view import generation_frame, viewer
from reports.tables import (accuracy_frame, decode_detail_frame, kernel_check_frame, kld_detail_frame, serving_frame,
                            summary_frame)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em} h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:right} th{white-space:normal;vertical-align:bottom;min-width:4em}
th{background:#f4f4f4} td:first-child,td:nth-child(2),td:nth-child(3){text-align:left}
.flag-broken,.flag-error{background:#fdd;border-left:6px solid #c00;padding:.5em 1em;margin:.4em 0;font-weight:600}
.flag-warning{background:#fff6d6;border-left:6px solid #d90;padding:.5em 1em;margin:.4em 0}
.note{color:#444;font-size:.9em} img{max-width:100%;border:1px solid #eee;margin:.5em 0}
code{background:#f4f4f4;padding:0 .2em} .small{font-size:.8em;color:#555}
tr.broken td{background:#fdd} tr.failed td{background:#eee;color:#777} tr.unsupported td{background:#f6f6f6;color:#777;font-style:italic}
.verdict-pass{background:#e6f6e6;border-left:8px solid #2a2;padding:.6em 1em} .verdict-fail{background:#fdd;border-left:8px solid #c00;padding:.6em 1em}
.verdict-inconclusive{background:#fff6d6;border-left:8px solid #d90;padding:.6em 1em} .verdict-big{font-size:1.3em;font-weight:700}
tr.dec-fail td{background:#fdd} tr.dec-inconclusive td{background:#fff6d6}
table.gen{width:100%;display:table} table.gen th{width:16em;text-align:left;vertical-align:top} table.gen td{text-align:left}
table.gen pre{white-space:pre-wrap;margin:0;font-size:.95em} mark{background:#ffd24d} .degenerate{color:#c00;font-weight:700}
details{margin:.4em 0;border:1px solid #eee;padding:.3em .6em} summary{cursor:pointer}
.ship{background:#eef5ff;border-left:8px solid #36c;padding:.6em 1em;margin:.4em 0;font-size:1.05em}
"""


def _img(draw, alt: str, *args) -> str:
    """A plot drawn on its own: one that cannot be drawn becomes a line saying why, never a lost report."""
    try:
        png = draw(*args)
    except Exception as e:  # noqa: BLE001 - any plotting failure is shown, not raised
        plots.plt.close("all")
        return f"<p class='flag-warning'>The plot “{html.escape(alt)}” could not be drawn: {html.escape(type(e).__name__)}: {html.escape(str(e)[:300])}</p>"
    if not png:
        return f"<p class='note'>({html.escape(alt)}: no data)</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _table(df) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = r.get("status", "")
        body.append(f"<tr class='{html.escape(str(cls))}'>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv_table(d: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _bw(results: dict) -> str:
    bw = results["environment"].get("memory_bandwidth")
    if not bw:
        return "not measured"
    threads = f", {bw['threads']} threads" if bw.get("threads") else ""
    return f"{bw['gb_s']:.1f} GB/s, {html.escape(bw['method'])}{threads}"


def _plot_limits(verdict: dict | None, default_limits: dict | None) -> dict:
    """The limits drawn in the quality plot: the gate's policy for "*" when a verdict exists, else the
    limits the caller gives (the shipped default policy's)."""
    if verdict:
        return (verdict.get("policy", {}).get("variants") or {}).get("*", {})
    return default_limits or {}


def _verdict_section(v: dict) -> str:
    word = v["verdict"]
    per = " · ".join(f"{html.escape(k)}: <b>{html.escape(d.upper())}</b>" for k, d in v["variants"].items())
    rows = ["<table><tr><th>variant</th><th>runtime</th><th>rule</th><th>estimate [CI]</th><th>limit</th>"
            "<th>decision</th><th>reason</th><th>method</th></tr>"]
    unvalidated = False
    for r in v["rules"]:
        mark = ""
        if "bootstrap" in r["method"] and r.get("interval_coverage") is None:  # as verdict.md marks it
            mark, unvalidated = " †", True
        est = "—" if r["estimate"] is None else f"{r['estimate']:.4g}"
        if r["ci_low"] is not None and r["ci_low"] != r["ci_high"]:
            est += f" [{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
        lim = "—" if r["limit"] is None else f"{r['comparison']} {r['limit']:g}"
        rows.append(f"<tr class='dec-{html.escape(r['decision'])}'><td>{html.escape(r['variant'])}</td>"
                    f"<td>{html.escape(r['runtime'] or '—')}</td><td style='text-align:left'>{html.escape(r['rule'] + mark)}</td>"
                    f"<td>{html.escape(est)}</td><td>{html.escape(lim)}</td><td>{html.escape(r['decision'].upper())}</td>"
                    f"<td style='text-align:left'>{html.escape(r['reason'])}</td><td style='text-align:left'>{html.escape(r['method'])}</td></tr>")
    rows.append("</table>")
    if unvalidated:
        rows.append("<p class='note'>† interval not validated: no coverage study showed this quantity's interval "
                    "holding 95 ± 3% at the default counts (harness/gate/interval-coverage.json).</p>")
    b = v["bootstrap"]
    return (f"<div class='verdict-{html.escape(word)}'><div class='verdict-big'>Release gate: {html.escape(word.upper())}</div>"
            f"<div>{per}</div>{_ship_line(v.get('ship'))}<div class='small'>policy {html.escape(str(v['policy']['source']))}; "
            f"{v['counts']['pass']} rules passed, {v['counts']['fail']} failed, {v['counts']['inconclusive']} inconclusive "
            f"(inconclusive counts as {html.escape(v['policy']['on_inconclusive'])}); bootstrap {b['resamples']} resamples, "
            f"seed {b['seed']}</div></div><details><summary>Gate rules</summary>{''.join(rows)}"
            f"<p class='note'>{html.escape(v['rule_text'])}</p></details>")


def _ship_line(ship: dict | None, preview: bool = False) -> str:
    """The verdict's choice: the smallest (and the fastest) variant that passes, or the closest when none does."""
    if not ship or not ship.get("summary"):
        return ""
    s = ship["summary"]
    head = "What to ship, by the shipped default policy (no gate has run): " if preview else ""
    return f"<div class='ship'>{html.escape(head)}<b>{html.escape(s[0].upper() + s[1:])}</b></div>"


def _provenance(c: dict) -> str:
    """" (cached)" for a result this machine measured before; who measured it when another one did."""
    on = c.get("measured_on") or {}
    if c.get("measured_here", True) or not on:
        return " (cached)" if c.get("cached") else ""
    return (f" (measured on {on.get('hostname', '?')}, {on.get('cpu_model', '?')}, {on.get('measured_at', '?')}:"
            " same device class and libraries)")


def _interval_note(results: dict) -> str:
    """How the windows were chosen and how their intervals were made, with the effective sample sizes."""
    win, st = results["windows"], results.get("statistics") or {}
    b = st.get("bootstrap") or {}
    ref = (st.get("windows") or {}).get("fp16 × transformers") or {}
    n_eff = ref.get("n_eff_nll")
    paired = [d["n_eff_paired_nll_difference"] for d in (st.get("windows") or {}).values()
              if d.get("n_eff_paired_nll_difference") is not None]
    level = f"{100 * float(b.get('confidence', 0.95)):.0f}%"
    text = (f"Windows: {win.get('choice', 'the first ones of the text')}. Every interval is a {level} percentile bootstrap "
            f"({b.get('resamples', '?')} resamples, seed {b.get('seed', '?')}) that resamples windows by "
            f"{win.get('cluster_kind', 'window')} ({win.get('n_clusters', '?')} of them), paired against fp16 × "
            "transformers wherever a figure compares with it; the release gate computes the same intervals.")
    if n_eff is not None:
        text += f" Effective sample size: {n_eff:.1f} for fp16's per-window NLL"
        if paired:
            text += f", {min(paired):.1f}–{max(paired):.1f} for the paired differences"
        text += f" (of {win['n_windows']} windows)."
    return html.escape(text)


def render(results: dict, verdict: dict | None = None, limits: dict | None = None, ship: dict | None = None) -> str:
    src = results["source"]
    win = results["windows"]
    env = results["environment"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>quantcompare: {html.escape(src['name'])}</title>"
             f"<style>{CSS}</style></head><body>"]
    parts.append(f"<h1>quantcompare — {html.escape(src['name'])}</h1>")
    parts.append(f"<p class='small'>{html.escape(results['created_at'])} · {src['n_params'] / 1e6:.1f} M parameters "
                 f"({html.escape(src['model_type'])}, source {html.escape(src['dtype'])}, {html.escape(src['origin'])}) · "
                 f"{html.escape(env['cpu_model'])}, {env['threads']} threads"
                 + "".join(f" · {html.escape(g['name'])} ({html.escape(g['memory_total'])}, driver {html.escape(g['driver'])})"
                           for g in (env.get("gpu") or []) if results["run"]["eval"].get("device", "cpu") != "cpu")
                 + f" · commit {html.escape(env['git_commit'][:12])}</p>")
    if verdict:
        parts.append(_verdict_section(verdict))
    elif ship:
        parts.append(_ship_line(ship, preview=True))
    for f in results["flags"]:
        where = f["variant"] + (f" × {f['runtime']}" if f["runtime"] else "")
        parts.append(f"<div class='flag-{f['level']}'>{html.escape(f['level'].upper())}: {html.escape(where)} — {html.escape(f['message'])}</div>")
    synthetic = src.get("origin") == "synthetic"
    if synthetic:
        parts.append("<div class='flag-warning'>PERFORMANCE ONLY: random weights of the model's shape; speed, memory and "
                     "kernel checks are measured, quality is not (see Notes).</div>")
    parts.append("<h2>Summary</h2>")
    parts.append(profile_view.section(results))
    # two tables of the same rows, so that each fits a page's width: quality against fp16, then size, speed and
    # greedy generations (one table of every column ran past a 1400-pixel window)
    summary = summary_frame(results)
    cols = list(summary.columns)
    split = cols.index("size MB") if "size MB" in cols else len(cols)
    parts.append(_table(summary[cols[:split]]))
    if split < len(cols):
        parts.append(_table(summary[cols[:2] + cols[split:]]))
    methods = sorted({c["kld_method"] for c in results["cells"] if c.get("kld_method")})
    if len(methods) > 1:
        parts.append("<div class='flag-warning'>The KLD figures above were taken in different ways ("
                     + "; ".join(html.escape(m) for m in methods) + "): a top-k bound is lower than the exact value, "
                     "and a smaller k lowers it more. Compare KLDs only within one method; <code>--kld-exact</code> makes "
                     "every transformers and llama.cpp KLD exact.</div>")
    kc = kernel_check_frame(results)
    if kc is not None:
        tol = results["kernel_checks"][0].get("tolerance") or {"max_rel_mean_err": 0.05, "max_err_ratio": 1 / 3, "min_top1": 0.9}
        parts.append("<h2>Kernel checks (quantized runtime vs dequantized weights, same device)</h2>" + _table(kc))
        parts.append("<p class='note'>Before its speed is reported, each quantized runtime's logits on the same tokens are "
                     "compared with transformers running the exactly dequantized weights of the same file (AWQ: unpacked "
                     "qweight/qzeros/scales; GGUF: gguf-py's dequantization) on the same device and dtype. Differences come from "
                     "the kernels' own arithmetic (e.g. llama.cpp quantizes activations to 8 bits for its integer matmuls); "
                     "a wrong kernel shows as an error of the order of the logits themselves. A check passes when the error is "
                     f"under {100 * tol['max_rel_mean_err']:.0f}% of the mean |logit|, or under {tol['max_err_ratio']:.2f} of the "
                     "quantization's own effect (the dequantized reference against fp16's logits): rounding grows with "
                     "depth, reading the wrong weights lands as far as other weights do. Top-1 agreement is also given "
                     "over positions where the reference's leader is clear by more than one logit, and must be at least "
                     f"{100 * tol['min_top1']:.0f}% there (the limits of the first variant's quantizer; each check's own are in "
                     "results.json).</p>")
    parts.append(
        f"<p class='note'>Speed prompts are slices of {html.escape(win['text_file'])}; TTFT is the time to the first token "
        "after a 512-token prompt at batch 1; decode at batch b runs b different 128-token prompts together and counts the "
        "tokens of all of them; peak VRAM is nvidia-smi's used memory above the level before the cell loaded (CUDA context "
        f"and allocator reserve included). Decode % of roofline = decode tok/s × weight bytes per token ÷ {_bw(results)}.</p>"
        if synthetic else
        f"<p class='note'>Perplexity on {html.escape(win['text_file'])}: {win['n_windows']} windows of {win['n_ctx']} tokens "
        f"({win['scored_tokens']} scored tokens; {html.escape(win['protocol'])}). Every runtime scored the same token ids, "
        f"tokenized once with the source tokenizer. {_interval_note(results)} Speed: median of the timed runs after a warm-up, batch 1; "
        "bits per weight = bytes on disk × 8 / source parameter count. "
        "Decode % of roofline = decode tok/s × bytes of weights the runtime reads per token ÷ memory bandwidth "
        f"({_bw(results)}); weight bytes are the runtime's own (float32 in transformers, the GGUF file in llama.cpp).</p>")
    acc = accuracy_frame(results)
    if acc is not None:
        t = results["run"].get("tasks", {})
        parts.append("<h2>Downstream accuracy (lm-eval)</h2>" + _table(acc) + _img(plots.accuracy_deltas, "accuracy deltas", results))
        parts.append(f"<p class='note'>lm-eval {html.escape(str(results['environment'].get('packages', {}).get('lm-eval', '')))} task "
                     f"definitions and metrics, pointed at the shipped task files; {t.get('num_fewshot')}-shot, first "
                     f"{t.get('limit') or 'all'} documents per task, the same requests for every cell, tokenized once with the "
                     "source tokenizer. CIs are percentile bootstraps over documents (the same definition as the gate's); "
                     "the change vs fp16 is taken against fp16 on the same runtime when it ran there soundly (else fp16 × "
                     "transformers), paired by document.</p>")
    serving = serving_frame(results)
    if serving is not None:
        parts.append("<h2>Serving (vLLM)</h2>" + _table(serving) + _img(plots.throughput_vs_batch, "throughput vs batch", results))
        parts.append("<p class='note'>All requests are submitted at once and the engine is stepped to completion "
                     "(as <code>vllm bench throughput</code>); TTFT is from submission to each request's first token, ITL the "
                     "gap between its later tokens. Prompts are consecutive slices of the evaluation text; EOS is ignored.</p>")
    if not synthetic:
        parts.append("<h2>Quality vs size (Pareto)</h2>" + _img(plots.quality_vs_size, "quality vs size", results, _plot_limits(verdict, limits),
                                                          (verdict or ship or {}).get("variants"))
                     + "<p class='note'>Paired against fp16 × transformers on the same windows (ΔPPL: per-window NLL "
                     "differences; KLD: per-window means), so the intervals show what the comparison resolves, not the "
                     "spread of perplexity across windows. The grey step is the frontier: the variants no smaller one "
                     "beats; a red cross marks a variant that fails the gate (without a gate: the default policy) or is BROKEN. Dashed: the release policy's "
                     "limit for every variant "
                     + ("(the gate's policy)." if verdict else "(the shipped default policy; no gate has run).") + "</p>")
    if results.get("mix_comparisons"):
        head = ("<tr><th>mix</th><th>against</th><th>runtime</th><th>size MB (mix / against)</th><th>mean KLD (mix / against)"
                "</th><th>KLD difference [95% CI]</th><th>KLD ratio</th><th>ΔPPL difference, points [95% CI]</th></tr>")
        body = []
        for m in results["mix_comparisons"]:
            k, p = m.get("kld_mean") or {}, m.get("ppl_increase_pct") or {}
            kd, pd_ = k.get("difference") or [None] * 3, p.get("difference") or [None] * 3
            f = lambda x, s: "—" if x is None else format(x, s)  # noqa: E731
            body.append(f"<tr><td>{html.escape(m['mix'])}</td><td>{html.escape(m['against'])}</td><td>{html.escape(m['runtime'])}</td>"
                        f"<td>{m['mix_mb']:.1f} / {m['against_mb']:.1f}</td><td>{f(k.get('mix'), '.4f')} / {f(k.get('against'), '.4f')}</td>"
                        f"<td>{f(kd[0], '+.4f')} [{f(kd[1], '+.4f')}, {f(kd[2], '+.4f')}]</td><td>{f(k.get('ratio'), '.2f')}</td>"
                        f"<td>{f(pd_[0], '+.2f')} [{f(pd_[1], '+.2f')}, {f(pd_[2], '+.2f')}]</td></tr>")
        parts.append("<h2>Mixes against the stock types of their size</h2><table>" + head + "".join(body) + "</table>"
                     "<p class='note'>Differences are the mix's figure minus the stock variant's, paired over the same "
                     "windows (one bootstrap resample of articles for both): an interval below zero means the mix loses "
                     "less.</p>")
    if results.get("sensitivity"):
        s = results["sensitivity"]
        parts.append("<h2>Where the model is sensitive</h2>" + _img(plots.sensitivity_heatmap, "sensitivity", results)
                     + f"<p class='note'>{s['probes']} probes made by llama-quantize with the importance matrix: every tensor "
                     "Q8_0 except one group at the lowest type its tensors take (Q2_K where rows are multiples of 256 "
                     "values, else Q4_0); scored on "
                     f"{s['windows']['n_windows']} windows of the calibration text ({html.escape(s['kld_method'])}). The figure "
                     "is the probe's KLD against fp16 minus the all-Q8_0 probe's, paired window by window "
                     f"({s['seconds']:.0f} s for the stage). gguf-mix variants spend their bits where it is largest.</p>")
    parts.append(long_view.section(results, _img, _table))
    parts.append(instruct_view.section(results, _table))
    gf = generation_frame(results)
    if gf is not None and not synthetic:
        g = results["generation"]
        parts.append("<h2>Greedy generations vs fp16</h2>" + _table(gf) + _img(plots.generation_survival, "survival", results))
        parts.append(f"<p class='note'>{len(g['prompts'])} prompts ({sum(p['set'] == 'chat' for p in g['prompts'])} chat "
                     f"questions{' in the model' + chr(39) + 's chat template' if g.get('chat_template') else ''}, the rest "
                     f"openings of {html.escape(str(g['sources'].get('text')))} paragraphs no scored window contains), "
                     f"{g['n_new']} greedy tokens each, the same token ids in every cell, cut at the end of sequence. A "
                     "continuation diverges where its first token differs from fp16 × transformers' (or where one of the two "
                     "ends); it loops when a block of tokens repeats back to back three times over at least 12 tokens; "
                     "degenerate: a loop, an end where fp16 went on, or an empty answer. Intervals: bootstrap over prompts, "
                     "paired with fp16's continuation of the same prompt. A variant is judged by its change from fp16, "
                     "whose own loops count too.</p>")
        parts.append("<h3>Side by side (most damaged prompts first; the first differing token marked)</h3>" + viewer(results))
    dd = decode_detail_frame(results)
    if dd is not None:
        parts.append("<h2>GPU decode: compiled step and profile of one token</h2>" + _table(dd) +
                     "<p class='note'>transformers-compiled decodes with a static KV cache and a torch.compile'd one-token "
                     "step (CUDA graphs on a GPU); its logits are checked against the eager forward on the same tokens. "
                     "The profile is torch.profiler's CUDA kernels of 16 decode steps less those of the prefill alone: "
                     "GPU busy time far below the wall time per token means the loop is bound by launching kernels, "
                     "not by reading weights. The output layer is the slowest kernel of a step and is left out of the "
                     "per-layer time.</p>")
    parts.append("<h2>Speed</h2>" + _img(plots.speed_bars, "speed", results))
    if not synthetic:
        parts.append("<h2>Per-window perplexity</h2>" + _img(plots.window_ppl_distribution, "per-window perplexity", results))
        kd = kld_detail_frame(results)
        parts.append("<h2>KL divergence vs fp16</h2>" + (_table(kd) if kd is not None else "")
                     + "<p class='note'>As <code>llama-perplexity --kl-divergence</code> reports them: per-token KL "
                     "divergence from fp16's distribution (percentiles over every scored token), Δp = the variant's "
                     "probability of the text's next token minus fp16's, the share of tokens whose most likely next "
                     "token is fp16's, and the correlation of per-token ln PPL with fp16's. Intervals resample whole "
                     "windows by article. <code>make bench</code> checks these against llama-perplexity itself.</p>"
                     + _img(plots.kld_distribution, "KLD distribution", results))
    parts.append("<h2>Checks per cell</h2><table><tr><th>cell</th><th>status</th><th>greedy continuation of “The capital of France is”</th>"
                 "<th>runtime tokenizer vs source</th><th>compute</th><th>notes</th></tr>")
    for c in results["cells"]:
        tc = c.get("tokenizer_check")
        tcs = "—" if not tc else ("identical" if tc["identical"] else f"differs at token {tc['first_difference']}")
        notes = "; ".join(c.get("notes") or []) or (c.get("error") or "")
        parts.append(f"<tr class='{c['status']}'><td>{html.escape(c['variant'])} × {html.escape(c['runtime'])}</td><td>{c['status']}"
                     f"{html.escape(_provenance(c))}</td><td style='text-align:left'>{html.escape(repr(c.get('sanity_text')))}</td>"
                     f"<td>{html.escape(tcs)}</td><td>{html.escape(str(c.get('compute_dtype') or '—'))}</td>"
                     f"<td style='text-align:left'>{html.escape(notes)}</td></tr>")
    parts.append("</table>")
    parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in results["notes"]) + "</ul>")
    parts.append("<h2>Variants (manifests)</h2>")
    for v, m in results["manifests"].items():
        parts.append(f"<h3>{html.escape(v)}</h3>" + _kv_table({
            "tool": m["tool"], "tool versions": json.dumps(m["tool_versions"]), "recipe": json.dumps(m["recipe"]),
            "format": m["format"], "size": f"{m['size_bytes']:,} bytes", "build time": f"{m['wall_time_s']} s",
            "calibration sha256": m.get("calibration_sha256") or "—", "cache key": m["cache_key"][:16],
        }))
    if results.get("stages"):
        import pandas as pd

        gpu = any(x.get("gpu_busy") is not None for x in results["stages"])
        st = pd.DataFrame([{"stage": x["name"], "seconds": "—" if x["wall_s"] is None else f"{x['wall_s']:.1f}",
                            **({"GPU busy": "" if x.get("gpu_busy") is None else f"{100 * x['gpu_busy']:.0f}%"} if gpu else {}),
                            "reused": "cached" if x["cached"] else "", "note": x.get("note", "")} for x in results["stages"]])
        # a cell's generation row lies inside the cell's own time: counted once
        run_s = sum(x["wall_s"] or 0 for x in results["stages"] if x["kind"] not in ("install", "generation"))
        parts.append("<h2>Where the time went</h2>" + _table(st) +
                     f"<p class='note'>This run: {run_s:.0f} s (installs, made before it by <code>make</code>, excluded). "
                     "Cached stages came from the shared store (<code>quantcompare cache ls</code>).</p>")
    parts.append("<h2>Environment</h2>" + _kv_table({k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in env.items()}))
    parts.append("<p class='small'>Generated by quantcompare. All numbers come from this run's measurements or cached "
                 "artifacts and cell results listed above.</p></body></html>")
    return "\n".join(parts)


def write_report(results: dict, path: Path, verdict: dict | None = None, limits: dict | None = None,
                 ship: dict | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(render(results, verdict, limits, ship), encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
