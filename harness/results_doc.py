"""The results document: rows (one per variant × runtime × metric, with CIs), per-window data of each
cell, flags, kernel checks, manifests, environment and notes."""
from __future__ import annotations

import time


from evaluators.kernel_check import kernel_checks
from evaluators.stats import Bootstrap, effective_sample_size
from harness import instruct_doc, long_doc, long_metrics, metrics
from harness.instruct_metrics import INSTRUCT_QUANTITIES
from harness.evidence import collect
from harness.generation_doc import attach, noise_floor_note
from harness.generation_metrics import GEN_QUANTITIES
from harness.mix_compare import comparisons
from core import registry
from core.names import REFERENCE
from harness import provenance
from harness.cell_launcher import CellOutcome
from harness.variant_flags import Flag, check_cells, decode_check_flags, nonfinite_flags
from harness.shared_inputs import decode
from harness.schema import SCHEMA_VERSION, Row



def cell_rows(c: CellOutcome, n_params: int, size: int, bandwidth: dict | None = None) -> list[Row]:
    """Size, memory and speed rows of a cell (quality rows: quality_rows)."""
    r = c.result
    v, rt = c.variant, c.runtime
    rows = []
    rows.append(Row(v, rt, "size_bytes", float(size)))
    rows.append(Row(v, rt, "bits_per_weight", size * 8.0 / n_params))
    rows.append(Row(v, rt, "peak_rss_bytes", float(r["peak_rss_bytes"])))
    if r.get("peak_vram_bytes") is not None:
        rows.append(Row(v, rt, "peak_vram_bytes", float(r["peak_vram_bytes"])))
    sp = r.get("speed")
    if sp:
        for name in ("prefill", "decode"):
            runs = sp[f"{name}_tok_s_runs"]
            rows.append(Row(v, rt, f"{name}_tok_s", sp[f"{name}_tok_s"], min(runs), max(runs)))
        for b, d in (sp.get("decode_batched") or {}).items():
            rows.append(Row(v, rt, f"decode_tok_s_b{b}", d["tok_s"], min(d["runs"]), max(d["runs"])))
        if sp.get("ttft_s") is not None:
            rows.append(Row(v, rt, "ttft_s", sp["ttft_s"], min(sp["ttft_s_runs"]), max(sp["ttft_s_runs"]), unit="s"))
    if "eval_tok_s" in r:
        rows.append(Row(v, rt, "eval_tok_s", r["eval_tok_s"]))
    wb = r.get("weight_bytes")
    if wb and sp and bandwidth:
        rows.append(Row(v, rt, "weight_bytes_per_token", float(wb)))
        # several GPUs that read their shards at once (tensor parallel, llama.cpp by row) have their bandwidths
        # added; split by layer, one GPU works at a time
        par = r.get("parallel") or {}
        n = int(par.get("gpus", 1)) if par.get("layout") not in ("layers", "llama.cpp split by layer") else 1
        rows.append(Row(v, rt, "decode_roofline_pct", 100.0 * sp["decode_tok_s"] * wb / (n * bandwidth["bytes_s"])))
    for sv in r.get("serving") or []:
        b = sv["batch"]
        rows.append(Row(v, rt, f"output_tok_s_b{b}", sv["output_tok_s"]))
        for name in ("ttft", "itl"):
            rows.append(Row(v, rt, f"{name}_p50_s_b{b}", sv[f"{name}_p50_s"], unit="s"))
            rows.append(Row(v, rt, f"{name}_p90_s_b{b}", sv[f"{name}_p90_s"], unit="s"))
    return rows


def _row(v: str, rt: str, metric: str, e, unit: str = "") -> Row:
    return Row(v, rt, metric, e.value, e.ci_low, e.ci_high, unit=unit)


def quality_rows(evidence: dict, clusters, boot=metrics.BOOTSTRAP) -> list[Row]:
    """Every window quantity of every measured cell, from harness.metrics: the same estimate and interval
    the gate computes (paired against fp16 × transformers where the quantity compares)."""
    try:
        ref = metrics.reference_cell(evidence)
    except metrics.NotMeasured:
        ref = None
    rows = []
    long_ctx = max([c.long_ctx for c in evidence.values()] + [0])
    extra = tuple(long_metrics.quantities(long_ctx)) if long_ctx else ()
    if any(c.if_strict is not None for c in evidence.values()):
        extra += INSTRUCT_QUANTITIES
    for (v, rt), cell in evidence.items():
        if cell.status not in ("ok", "broken"):
            continue
        quantities = metrics.WINDOW_QUANTITIES + GEN_QUANTITIES + extra
        descriptive = {q.metric for q in quantities if q.descriptive}
        got = metrics.estimate_all(cell, ref, clusters, boot, quantities=quantities)
        for metric, e in got.items():
            # a descriptive figure is printed as it is, with no interval (KLD p99.9 and max)
            rows.append(Row(v, rt, metric, e.value) if metric in descriptive else _row(v, rt, metric, e))
        rows += _long_values(cell, ref, [q for q in extra if q.metric not in got])
    return rows


def _long_values(cell, ref, missing) -> list[Row]:
    """Long-window figures whose positions too few windows reach for an interval: the value alone."""
    rows = []
    for q in missing:
        if not q.metric.startswith("long_") or (q.paired and (ref is None or ref is cell)):
            continue
        try:
            q.data(cell, ref)
        except long_metrics.TooFewWindows:
            rows.append(Row(cell.variant, cell.runtime, q.metric, long_metrics.point(q, cell, ref)))
        except metrics.NotMeasured:
            continue
    return rows


def task_rows(evidence: dict, scores: dict[tuple[str, str], dict], boot=metrics.BOOTSTRAP) -> list[Row]:
    """lm-eval metrics per cell and their change against fp16 (harness.metrics.task_reference), each with a
    bootstrap interval over documents (paired for the change), from the per-document outcomes only: a metric
    without them has no row (and the cell's notes say why), never a second kind of interval."""
    rows = []
    for (v, rt), tasks in scores.items():
        cell = evidence.get((v, rt))
        if cell is None:
            continue
        try:
            ref = metrics.task_reference(evidence, cell) if (v, rt) != REFERENCE else None
        except metrics.NotMeasured:
            ref = None
        for task, d in tasks.items():
            for metric in d["metrics"]:
                name = f"{task}:{metric}"
                try:
                    rows.append(_row(v, rt, name, metrics.task_value(cell, task, metric, boot), unit="task"))
                except metrics.NotMeasured:
                    continue
                if ref is not None and v != REFERENCE[0]:
                    try:
                        rows.append(_row(v, rt, f"{name}_delta_vs_fp16", metrics.task_delta(cell, ref, task, metric,
                                                                                              boot), unit="task"))
                    except metrics.NotMeasured:
                        pass
    return rows


def bootstrap_of(results: dict) -> Bootstrap:
    """The bootstrap settings results.json's rows were computed with."""
    b = (results.get("statistics") or {}).get("bootstrap") or {}
    d = metrics.BOOTSTRAP
    return Bootstrap(int(b.get("seed", d.seed)), int(b.get("resamples", d.resamples)), float(b.get("confidence", d.level)))


def with_bootstrap(results: dict, boot: Bootstrap) -> dict:
    """results with every quality and task row recomputed under `boot` (a gate policy's settings), so that a
    report shown beside a verdict prints the verdict's very intervals; results itself is left as it is."""
    if bootstrap_of(results) == boot:
        return results
    evidence = collect(results)
    scores = {(t["variant"], t["runtime"]): t["scores"] for t in results.get("task_cells", []) if t.get("scores")}
    fresh = {(r.variant, r.runtime, r.metric): r.as_dict()
             for r in quality_rows(evidence, (results.get("windows") or {}).get("clusters"), boot)
             + task_rows(evidence, scores, boot)}
    rows = [fresh.pop((r["variant"], r["runtime"], r["metric"]), r) for r in results["rows"]] + list(fresh.values())
    stats = {**(results.get("statistics") or {}),
             "bootstrap": {"seed": boot.seed, "resamples": boot.resamples, "confidence": boot.level}}
    return {**results, "rows": rows, "statistics": stats}


def window_statistics(evidence: dict, clusters) -> dict:
    """How many independent units the windows are worth: per cell, the effective sample size of its
    per-window NLL and of its paired difference from fp16 (harness/metrics resamples by cluster)."""
    ref = evidence.get(REFERENCE)
    out = {}
    for (v, rt), cell in evidence.items():
        if cell.window_nll is None:
            continue
        d = {"n_windows": int(len(cell.window_nll)), "n_eff_nll": effective_sample_size(cell.window_nll, clusters)}
        if ref is not None and ref is not cell and ref.window_nll is not None and len(ref.window_nll) == len(cell.window_nll):
            d["n_eff_paired_nll_difference"] = effective_sample_size(cell.window_nll - ref.window_nll, clusters)
        out[f"{v} × {rt}"] = d
    return out


def profile_doc(cfg) -> dict:
    """The run's profile and, for each gate rule, whether its interval can decide at the run's counts
    (harness/gate/resolution.py), against the default policy's limits where it names the rule."""
    from core.profiles import SUMMARY
    from harness.gate.preview import default_limits
    from harness.gate.resolution import decidability

    return {"name": cfg.profile, "summary": SUMMARY.get(cfg.profile, ""),
            "decidability": decidability(cfg.as_sections(), default_limits())}


def assemble(source, cfg, prepared, variant_outcomes, cells: list[CellOutcome], console, task_scores=None,
             task_cells=(), bandwidth: dict | None = None, generation: tuple = ((), {}), long: tuple = (None, ()),
             instruct: tuple = ((), {}, ())) -> dict:
    ref = next((c for c in cells if (c.variant, c.runtime) == REFERENCE and c.ok), None)
    rows: list[Row] = []
    ppl: dict[tuple[str, str], float] = {}
    cell_docs = []
    for c in cells:
        doc = c.doc()
        if c.ok:
            m = variant_outcomes[c.variant].manifest
            rows += cell_rows(c, source.n_params, m.size_bytes, bandwidth)
            r = c.result
            if "window_nll" in r and not r.get("nonfinite_positions"):  # non-finite logits: nonfinite_flags says so
                ppl[(c.variant, c.runtime)] = metrics.ppl(r["window_nll"])
            doc.update({
                "window_nll": r.get("window_nll"),
                "nll_per_token": r.get("nll_per_token"),
                "window_ppl": [metrics.ppl([x]) for x in r["window_nll"]] if "window_nll" in r else None,
                "kld_per_window": (r.get("kld") or {}).get("per_window_mean"),
                "top1_per_window": (r.get("kld") or {}).get("top1_per_window"),
                "kld_per_token": (r.get("kld") or {}).get("per_token"),
                "kld_top_k": (r.get("kld") or {}).get("top_k"),
                "sanity_text": decode(source.path, r["sanity_tokens"][:8]) if r.get("sanity_tokens") else None,
                "tokenizer_check": r.get("tokenizer_check"),
                "speed": r.get("speed"),
                "load_s": r.get("load_s"),
                "eval_seconds": r.get("eval_seconds"),
                "compute_dtype": r.get("compute_dtype"),
                "versions": r.get("versions"),
                "notes": r.get("notes", []),
                "threads": r.get("threads"),
                "serving": r.get("serving"),
                "kld_method": (r.get("kld") or {}).get("method"),
                "role": r.get("role", "measured"),
                "peak_vram_bytes": r.get("peak_vram_bytes"),
                "peak_vram_bytes_per_gpu": r.get("peak_vram_bytes_per_gpu"),
                "parallel": r.get("parallel"),
                "device": r.get("device", "cpu"),
                "decode_check": r.get("decode_check"),
                "decode_check_after_batches": r.get("decode_check_after_batches"),
                "compile_seconds": r.get("compile_seconds"),
                "decode_profile": r.get("decode_profile"),
            })
        cell_docs.append(doc)
    gen_prompts, gen_info = generation
    gen_section = attach(cell_docs, {(c.variant, c.runtime): c.result.get("generation") for c in cells if c.ok},
                         list(gen_prompts), gen_info, cfg.eval.gen_tokens, source.path)
    task_scores = task_scores or {}
    task_docs = []
    for c in task_cells:
        task_docs.append({**c.doc(), "scores": task_scores.get((c.variant, c.runtime)),
                          "seconds": c.result.get("tasks_seconds") if c.ok else None})
    failed = {(c.variant, c.runtime): c.error for c in list(cells) + list(task_cells) + list(long[1]) + list(instruct[2])
              if not c.ok and not c.unsupported}
    variant_errors = {v: o.error for v, o in variant_outcomes.items() if o.error}
    same = registry.same_weights_variants()
    synthetic = source.origin == "synthetic"  # random weights: every measure ran and is timed; no quality figure
    flags = check_cells({} if synthetic else ppl, REFERENCE if ref else None, failed, variant_errors, same)
    flags += nonfinite_flags([c for c in cells if c.ok])
    built = {v: o.manifest for v, o in variant_outcomes.items() if o.manifest}
    checks = kernel_checks(cell_docs, built, cfg.out / "work", {v: registry.kernel_tolerance(v) for v in built})
    flags += [Flag("broken", c["variant"], c["runtime"], c["message"]) for c in checks if not c["ok"]]
    flags += decode_check_flags(cell_docs)
    long_section = long_doc.section(*long)
    if_section = instruct_doc.section(instruct[0], instruct[1], instruct[2], cfg.eval.instruct_tokens, source.path)
    long_flags = long_doc.flags(cell_docs, long_section)
    if synthetic:  # timings only; non-finite logits are a defect on any weights
        gen_section = long_section = if_section = None
        long_flags = [f for f in long_flags if "not finite" in f.message]
    flags += long_flags
    broken = {(f.variant, f.runtime) for f in flags if f.level == "broken"}
    for d in cell_docs:
        if (d["variant"], d["runtime"]) in broken:
            d["status"] = "broken"
    # every quality number from one definition (harness/metrics.py), as the gate will compute it
    evidence = collect({"cells": cell_docs, "task_cells": task_docs, "rows": [], "flags": [f.as_dict() for f in flags],
                        "generation": gen_section, "long_context": long_section, "instruction_following": if_section})
    long_doc.attach_views(long_section, evidence)
    for d in cell_docs:  # the report's KLD curve: percentiles of the very per-token values the rows bootstrap
        ev = evidence.get((d["variant"], d["runtime"]))
        d["kld_percentiles"] = metrics.kld_curve(ev) if ev is not None and ev.kld_tokens is not None else None
    clusters = prepared.info.get("clusters")
    if not synthetic:
        rows = quality_rows(evidence, clusters) + rows + task_rows(evidence, task_scores)
    mixes = comparisons(evidence, clusters, {v: o.manifest.size_bytes for v, o in variant_outcomes.items() if o.manifest})
    for d in cell_docs:
        cont = (d.get("speed") or {}).get("contention") or {}
        if cont.get("contended"):
            flags.append(Flag("warning", d["variant"], d["runtime"],
                              f"speed measured while other processes competed for the cores (others used "
                              f"{cont['other_cores']:.2f} cores on average, {cont['steal_pct']:.1f}% stolen, load "
                              f"{cont.get('loadavg_before')} -> {cont.get('loadavg_after')}): its speed figures are not reliable"))
    for d in cell_docs:
        tc = d.get("tokenizer_check")
        if tc and not tc["identical"]:
            flags.append(Flag("warning", d["variant"], d["runtime"],
                              f"the runtime's own tokenizer differs from the source tokenizer (first at token {tc['first_difference']}); "
                              "scoring is unaffected (every runtime gets the same token ids), generation from text would differ"))
    notes = list(source.notes) + list(cfg.notes) + noise_floor_note(cell_docs, same, cfg.eval.gen_tokens)
    for o in variant_outcomes.values():
        if o.manifest:
            notes += [f"{o.variant}: {n}" for n in o.manifest.notes]
    if ref and ref.result.get("kld") is None and cfg.eval.kld_top_k > 0 and not cfg.synthetic:
        k = cfg.eval.kld_top_k
        notes.append(f"KL divergence is taken over fp16's top-{k} tokens plus one bucket for all others: "
                     f"exact when k is the vocabulary size, otherwise a lower bound.")
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "quantcompare",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run": {
            "model_argument": cfg.model, "variants": list(cfg.variants), "eval": cfg.eval.as_dict(),
            "awq": cfg.awq.as_dict(), "reference": {"variant": REFERENCE[0], "runtime": REFERENCE[1]},
            "runtimes": list(cfg.runtimes), "tasks": cfg.tasks.as_dict(),
        },
        "profile": profile_doc(cfg),
        "config": cfg.as_sections(),  # `quantcompare compare --config results.json` repeats the run
        "variant_order": sorted(cfg.variants, key=registry.variant_order),
        "same_weights_variants": [v for v in same if v in cfg.variants],
        "generation": gen_section,
        "long_context": long_section,
        "instruction_following": if_section,
        "mix_comparisons": mixes,
        "source": source.as_dict(),
        "environment": {**provenance.describe(cfg.eval.threads, cfg.eval.seed), "memory_bandwidth": bandwidth},
        "windows": prepared.info,
        "statistics": {"bootstrap": {"seed": metrics.BOOTSTRAP.seed, "resamples": metrics.BOOTSTRAP.resamples,
                                     "confidence": metrics.BOOTSTRAP.level},
                       "resampled_by": prepared.info.get("cluster_kind", "window"),
                       "windows": window_statistics(evidence, clusters)},
        "rows": [r.as_dict() for r in rows],
        "cells": cell_docs,
        "task_cells": task_docs,
        "kernel_checks": checks,
        "manifests": {v: o.manifest.as_dict() for v, o in variant_outcomes.items() if o.manifest},
        "variant_errors": variant_errors,
        "flags": [f.as_dict() for f in flags],
        "notes": notes,
    }


