"""`quantcompare bench`: the harness against llama.cpp's own tools, on the same GGUF files,
context, chunk count and threads, in one run:

- perplexity: harness (llama.cpp runtime) vs `llama-perplexity -f wiki.test.raw` — PPL difference and
  speed ratio (tokens per second of the whole pass);
- kld: harness KLD of Q4_K_M against gguf-f16 vs `llama-perplexity --kl-divergence` against the F16 base —
  mean KLD and same-top-token rate;
- prefill / decode: harness tok/s (llama-bench protocol) vs `llama-bench` pp512 / tg128;
- roofline: memory bandwidth (STREAM triad) and decode tok/s as a share of bandwidth / weight bytes.
Speed ratios compare medians of `rounds` alternating harness/tool runs (this kind of machine drifts by
±10% over minutes). Harness and tools run with the same flash-attention setting (-fa; the harness's default, off, is exact
attention); llama-perplexity is also run once at its own default (-fa auto) and reported for information.
Writes OUT/bench.json; prints every ratio and a last line with all of them."""
from __future__ import annotations

from statistics import median
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from harness import metrics
from harness.cell_launcher import CellJob, cell_key, evaluator_code_hash, run_cell
from harness.cell_plan import CellPlanner
from harness.config import RunConfig
from core.errors import UserError
from harness.shared_inputs import prepare_windows
from core.paths import CALIBRATION_TEXT, WIKITEXT_TEST
from harness.llama_tool_output import (KLD_AGREE_PCT, KLD_AGREED, KLD_REPORTED, harness_kld_stats, parse_kld,
                                       parse_llama_bench, parse_perplexity)
from evaluators.roofline import measure_bandwidth
from harness.schema import write_json_atomic
from harness.source import resolve_source
from harness.variants import build_variants

GOALS = {"perplexity_ppl_diff_pct": 0.1, "perplexity_speed_ratio": 0.95, "kld_mean_rel_diff_pct": 2.0,
         "kld_same_top_diff_pts": 0.5, "prefill_ratio_band": 0.05, "decode_ratio_band": 0.05}


def _tool(tools: Path, name: str) -> Path:
    exe = tools / name
    if not exe.is_file():
        raise UserError(f"{exe} not found: run `make tools` first")
    return exe


def _run(cmd: list[str], console, log: Path) -> str:
    console.line("[bench] $ " + " ".join(str(c) for c in cmd))
    t0 = time.time()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    log.write_text(p.stdout + "\n--- stderr ---\n" + p.stderr)
    if p.returncode != 0:
        tail = " | ".join(p.stderr.strip().splitlines()[-3:])
        raise UserError(f"{Path(cmd[0]).name} failed (exit {p.returncode}): {tail}")
    console.line(f"[bench]   done in {time.time() - t0:.1f} s (log: {log})")
    return p.stdout + "\n" + p.stderr


def _cell(variant, outcome, changes: dict, prepared, cfg, work: Path, console) -> dict:
    """One harness cell on llama.cpp, planned as compare plans it, with bench's changes (a tag, the reference)."""
    spec = CellPlanner(cfg, prepared, work).quality(variant, outcome, "llama.cpp", has_reference=False)
    spec = spec.with_(**{"speed": False, "reference_dir": None, "write_reference": False, **changes})
    job = CellJob(variant, "llama.cpp", spec, cell_key(spec, outcome.manifest.cache_key, evaluator_code_hash()))
    console.line(f"[bench] harness: {variant} × llama.cpp {spec.tag}")
    o = run_cell(job, work / "cells" / spec.tag, console, 3600.0, cfg.eval.threads)
    if not o.ok:
        raise UserError(f"harness cell {variant} ({spec.tag}) failed: {o.error}")
    return o.result


SPEED_CHUNKS = 16  # chunks per alternating speed pass


def run_bench(cfg: RunConfig, tools: Path, console, rounds: int = 3) -> int:
    t_start = time.time()
    perplexity_exe, bench_exe = _tool(tools, "llama-perplexity"), _tool(tools, "llama-bench")
    source = resolve_source(cfg.model, progress=console.line)
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    text = cfg.eval_text or WIKITEXT_TEST
    cfg = replace(cfg, variants=("gguf-f16", "gguf-q4_k_m"))
    prepared = prepare_windows(source, text, cfg.eval, work)
    n_chunks, n_ctx, threads = prepared.info["n_windows"], cfg.eval.n_ctx, cfg.eval.threads
    console.line(f"[bench] {n_chunks} chunks × {n_ctx} tokens of {text.name}, {threads} threads")
    variants = build_variants(source, cfg, CALIBRATION_TEXT, out / "artifacts", console)
    for v in cfg.variants:
        if variants[v].manifest is None:
            raise UserError(f"could not build {v}: {variants[v].error}")
    f16 = variants["gguf-f16"].folder / variants["gguf-f16"].manifest.artifact
    q4 = variants["gguf-q4_k_m"].folder / variants["gguf-q4_k_m"].manifest.artifact
    ref_dir = work / f"bench-reference-{prepared.info['windows_sha256'][:12]}-k{cfg.eval.kld_top_k}"

    # 1. harness: Q4_K_M perplexity alone (speed of the pass), F16 writing the KLD reference, Q4_K_M KLD.
    h_ppl = _cell("gguf-q4_k_m", variants["gguf-q4_k_m"], {"tag": "ppl"}, prepared, cfg, work, console)
    h_ref = _cell("gguf-f16", variants["gguf-f16"], {"tag": "kld-base", "reference_dir": str(ref_dir),
                                                      "write_reference": True}, prepared, cfg, work, console)
    h_kld = _cell("gguf-q4_k_m", variants["gguf-q4_k_m"], {"tag": "kld", "reference_dir": str(ref_dir)},
                  prepared, cfg, work, console)

    # 2. llama.cpp's tools on the same files, text, context, chunks and threads.
    fa = cfg.options("llama.cpp").flash_attn
    common = ["-c", n_ctx, "-b", n_ctx, "--chunks", n_chunks, "-t", threads, "-fa", fa]
    t_ppl = parse_perplexity(_run([perplexity_exe, "-m", q4, "-f", text, *common], console, logs / "llama-perplexity-q4.log"))

    # Speed ratios on a machine whose speed drifts by ±10% over minutes (shared cores): harness and tool
    # alternate, `rounds` times, on the same work, and their medians are compared.
    sub_n = min(SPEED_CHUNKS, n_chunks)
    sub_windows = prepare_windows(source, text, replace(cfg.eval, windows=sub_n), work)
    pass_h, pass_t = [], []
    speed_h: dict[str, list[dict]] = {"gguf-f16": [], "gguf-q4_k_m": []}
    bench_t: dict[str, list[dict]] = {"gguf-f16": [], "gguf-q4_k_m": []}
    for i in range(rounds):
        console.line(f"[bench] speed round {i + 1}/{rounds}")
        pass_h.append(_cell("gguf-q4_k_m", variants["gguf-q4_k_m"], {"tag": f"pass-{i}"}, sub_windows, cfg, work,
                            console)["eval_tok_s"])
        pass_t.append(parse_perplexity(_run([perplexity_exe, "-m", q4, "-f", text, "-c", n_ctx, "-b", n_ctx, "--chunks",
                                             sub_n, "-t", threads, "-fa", fa], console,
                                            logs / f"llama-perplexity-q4-pass-{i}.log"))["tok_s"])
        for v, path in (("gguf-f16", f16), ("gguf-q4_k_m", q4)):
            speed_h[v].append(_cell(v, variants[v], {"tag": f"speed-{i}", "speed": True, "speed_protocol": "llama-bench",
                                                     "speed_repeats": 3, "score": False}, prepared, cfg, work,
                                    console)["speed"])
            bench_t[v].append(parse_llama_bench(_run(
                [bench_exe, "-m", path, "-p", cfg.eval.prefill_tokens, "-n", cfg.eval.decode_tokens, "-t", threads,
                 "-r", 3, "-fa", fa, "-o", "json"], console, logs / f"llama-bench-{v}-{i}.log")))
    # llama-perplexity as a user runs it (flash attention auto = on for CPU): informational, not a goal
    t_default = parse_perplexity(_run([perplexity_exe, "-m", q4, "-f", text, *common[:-2]], console,
                                      logs / "llama-perplexity-q4-fa-auto.log"))
    base_file = work / "llama-kld-base.bin"
    t_base = parse_perplexity(_run([perplexity_exe, "-m", f16, "-f", text, *common, "--kl-divergence-base", base_file],
                                   console, logs / "llama-perplexity-f16-base.log"))
    t_kld = parse_kld(_run([perplexity_exe, "-m", q4, "--kl-divergence-base", base_file, "--kl-divergence", *common],
                           console, logs / "llama-perplexity-kld.log"))
    base_file.unlink(missing_ok=True)  # full-vocabulary logits: gigabytes

    # 3. memory bandwidth and the decode roofline
    bw = measure_bandwidth(threads)
    console.line(f"[bench] memory bandwidth (triad, {threads} threads): {bw['gb_s']:.1f} GB/s")

    import numpy as np

    h_ppl_value = metrics.ppl(h_ppl["window_nll"])
    h_stats = harness_kld_stats(h_kld, h_ref)
    h_kld_mean = h_stats["kld_mean"]
    h_same_top = 100.0 * h_stats["top1_agreement"]
    report = {
        "perplexity": {
            "variant": "gguf-q4_k_m", "harness_ppl": h_ppl_value, "llama_perplexity_ppl": t_ppl["ppl"],
            "ppl_diff_pct": 100.0 * (h_ppl_value / t_ppl["ppl"] - 1.0),
            "harness_tok_s": median(pass_h), "llama_perplexity_tok_s": median(pass_t),
            "speed_ratio": median(pass_h) / median(pass_t), "speed_chunks": sub_n,
            "harness_tok_s_rounds": pass_h, "llama_perplexity_tok_s_rounds": pass_t,
            "full_pass_harness_tok_s": h_ppl["eval_tok_s"], "full_pass_llama_perplexity_tok_s": t_ppl["tok_s"],
            "f16_llama_perplexity_ppl": t_base["ppl"], "f16_harness_ppl": metrics.ppl(h_ref["window_nll"]),
            "flash_attn": fa, "llama_perplexity_default_fa_ppl": t_default["ppl"],
            "llama_perplexity_default_fa_tok_s": t_default["tok_s"],
            "default_fa_ppl_diff_pct": 100.0 * (h_ppl_value / t_default["ppl"] - 1.0),
        },
        "kld": {
            "harness_kld_mean": h_kld_mean, "llama_perplexity_kld_mean": t_kld["kld_mean"],
            "kld_mean_rel_diff_pct": 100.0 * (h_kld_mean / t_kld["kld_mean"] - 1.0),
            "harness_same_top_pct": h_same_top, "llama_perplexity_same_top_pct": t_kld["same_top_pct"],
            "same_top_diff_pts": h_same_top - t_kld["same_top_pct"], "harness_top_k": cfg.eval.kld_top_k,
            "method": h_kld["kld"]["method"],
            "statistics": {m: {"harness": h_stats.get(m), "llama_perplexity": t_kld[m],
                               "rel_diff_pct": (100.0 * (h_stats[m] / t_kld[m] - 1.0)
                                                if m in h_stats and t_kld[m] else None),
                               "held_to_pct": KLD_AGREE_PCT if m in KLD_AGREED else None}
                           for m in (*KLD_AGREED, *KLD_REPORTED)},
        },
        "prefill": {}, "decode": {},
        "roofline": {"bandwidth": bw, "cells": {}},
    }
    for v in ("gguf-f16", "gguf-q4_k_m"):
        for what, h_key, t_key in (("prefill", "prefill_tok_s", "pp"), ("decode", "decode_tok_s", "tg")):
            h_rounds = [s[h_key] for s in speed_h[v]]
            t_rounds = [b[t_key]["tok_s"] for b in bench_t[v]]
            report[what][v] = {"harness_tok_s": median(h_rounds), "llama_bench_tok_s": median(t_rounds),
                               "ratio": median(h_rounds) / median(t_rounds), "test": f"{t_key}{bench_t[v][0][t_key]['n']}",
                               "harness_rounds": h_rounds, "llama_bench_rounds": t_rounds}
        dec = report["decode"][v]
        size = variants[v].manifest.size_bytes
        ceiling = bw["bytes_s"] / size
        report["roofline"]["cells"][v] = {
            "weight_bytes": size, "ceiling_tok_s": ceiling,
            "harness_decode_pct": 100.0 * dec["harness_tok_s"] / ceiling,
            "llama_bench_decode_pct": 100.0 * dec["llama_bench_tok_s"] / ceiling,
        }
    report["goals"] = GOALS
    report["settings"] = {"n_ctx": n_ctx, "chunks": n_chunks, "threads": threads, "text": str(text), "speed_rounds": rounds,
                          "model": source.name, "tools": str(tools), "wall_s": round(time.time() - t_start, 1)}
    from harness import provenance

    report["environment"] = provenance.describe(threads, cfg.eval.seed)
    write_json_atomic(out / "bench.json", report)
    if cfg.eval.kld_top_k <= 0:
        import shutil

        shutil.rmtree(ref_dir, ignore_errors=True)  # whole-vocabulary reference: gigabytes

    p, k = report["perplexity"], report["kld"]
    lines = [
        f"perplexity (q4_k_m): harness {p['harness_ppl']:.4f} vs llama-perplexity {p['llama_perplexity_ppl']:.4f} "
        f"-> {p['ppl_diff_pct']:+.3f}% (goal ±{GOALS['perplexity_ppl_diff_pct']}%); speed {p['harness_tok_s']:.1f} vs "
        f"{p['llama_perplexity_tok_s']:.1f} tok/s -> ratio {p['speed_ratio']:.3f} (goal >= {GOALS['perplexity_speed_ratio']}; "
        f"medians of {rounds} alternating passes over {sub_n} chunks); both with flash attention {fa}",
        f"perplexity (q4_k_m), llama-perplexity at its default (-fa auto): {p['llama_perplexity_default_fa_ppl']:.4f}, "
        f"{p['llama_perplexity_default_fa_tok_s']:.1f} tok/s; harness differs by {p['default_fa_ppl_diff_pct']:+.3f}% (information)",
        f"kld (q4_k_m vs f16): harness {k['harness_kld_mean']:.6f} vs llama-perplexity {k['llama_perplexity_kld_mean']:.6f} "
        f"-> {k['kld_mean_rel_diff_pct']:+.2f}% (goal ±{GOALS['kld_mean_rel_diff_pct']}%); same top {k['harness_same_top_pct']:.2f}% "
        f"vs {k['llama_perplexity_same_top_pct']:.2f}% -> {k['same_top_diff_pts']:+.2f} pts (goal ±{GOALS['kld_same_top_diff_pts']})",
    ]
    for m, d in k["statistics"].items():
        held = f"(goal ±{d['held_to_pct']:g}%)" if d["held_to_pct"] else "(reported)"
        rel = "—" if d["rel_diff_pct"] is None else f"{d['rel_diff_pct']:+.2f}%"
        lines.append(f"kld statistic {m}: harness {d['harness']:.6g} vs llama-perplexity {d['llama_perplexity']:.6g} "
                     f"-> {rel} {held}")
    for what in ("prefill", "decode"):
        for v, d in report[what].items():
            lines.append(f"{what} {v} ({d['test']}): harness {d['harness_tok_s']:.1f} vs llama-bench {d['llama_bench_tok_s']:.1f} "
                         f"tok/s -> ratio {d['ratio']:.3f} (goal 1 ± 0.05)")
    for v, d in report["roofline"]["cells"].items():
        lines.append(f"roofline {v}: {d['weight_bytes'] / 1e6:.1f} MB/token at {bw['gb_s']:.1f} GB/s -> ceiling "
                     f"{d['ceiling_tok_s']:.1f} tok/s; harness decode {d['harness_decode_pct']:.1f}%, llama-bench "
                     f"{d['llama_bench_decode_pct']:.1f}% of it")
    for line in lines:
        console.line(line)
    console.line("BENCH " + " ".join([
        f"ppl_diff={p['ppl_diff_pct']:+.3f}%", f"ppl_speed={p['speed_ratio']:.3f}",
        f"kld_diff={k['kld_mean_rel_diff_pct']:+.2f}%", f"same_top_diff={k['same_top_diff_pts']:+.2f}pts",
        f"kld_stats_max_diff={max((abs(d) for m in KLD_AGREED if (d := k['statistics'][m]['rel_diff_pct']) is not None), default=0.0):.2f}%",
        *[f"{w}_{v}={report[w][v]['ratio']:.3f}" for w in ("prefill", "decode") for v in report[w]],
        *[f"roofline_{v}={d['harness_decode_pct']:.1f}%" for v, d in report["roofline"]["cells"].items()],
    ]))
    console.line(f"wrote {out / 'bench.json'} in {time.time() - t_start:.0f} s")
    return 0
