"""Where the model is sensitive: for each tensor group (each block's attention and feed-forward tensors, the
token embedding, the output layer), how much the KL divergence against fp16 grows when only that group is
quantized to the lowest type its tensors take and everything else stays Q8_0 (quantizers/gguf_mix.py makes the
probes with llama.cpp's own llama-quantize and the importance matrix; each probe is an artifact in the store).

The probes are scored on windows of the calibration text (never on the evaluation text), by the llama.cpp
runtime against fp16 × transformers' reference, in cells like any other (cached by the same keys). A group's
figure is its probe's per-window mean KLD minus the all-Q8_0 probe's, paired window by window, with a percentile
bootstrap over the windows (they are resampled one by one: the calibration text has no articles)."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from harness import store
from harness import metrics as M
from harness.evidence import CellEvidence

SENSITIVITY_WINDOWS = 8
BASE_PROBE = "gguf-probe-base"


def _calibration_text(calib: Path, work: Path) -> Path:
    from harness.shared_inputs import calibration_texts

    f = work / "calibration-text.txt"
    f.parent.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join(calibration_texts(calib)) + "\n"
    if not f.is_file() or f.read_text() != text:
        f.write_text(text)
    return f


def _kld_evidence(variant: str, cell) -> CellEvidence:
    ev = CellEvidence(variant, "llama.cpp", "ok")
    ev.kld_window = np.asarray(cell.result["kld"]["per_window_mean"], dtype=np.float64)
    return ev


def run_sensitivity(source, cfg, calib: Path, out: Path, console) -> tuple[Path, dict]:
    """Build the probes, score them, and write sensitivity.json (into the store and OUT); returns its path."""
    from harness.cell_runs import evaluate, plan_cells
    from harness.shared_inputs import prepare_windows
    from harness.variants import build_variants
    from quantizers.gguf_mix import tensor_groups

    t0 = time.time()
    work = out / "work" / "sensitivity"
    # what the probes' cells depend on, and nothing else of the run (so every run reuses them)
    base_settings = type(cfg.eval)()
    settings = replace(base_settings, n_ctx=cfg.eval.n_ctx, threads=cfg.eval.threads, kld_top_k=cfg.eval.kld_top_k,
                       device=cfg.eval.device, windows=SENSITIVITY_WINDOWS, window_choice="spread", window_seed=0,
                       gen_prompts=0)
    prepared = prepare_windows(source, _calibration_text(calib, work), settings, work)
    base = build_variants(source, replace(cfg, variants=("gguf-f16",)), calib, out / "artifacts", console)
    f16 = base["gguf-f16"]
    if f16.manifest is None:
        raise RuntimeError(f"gguf-f16 could not be built: {f16.error}")
    groups, _ = tensor_groups(f16.folder / f16.manifest.artifact)
    probes = [BASE_PROBE] + [f"gguf-probe-{g.name}" for g in groups]
    console.line(f"[sensitivity] {len(groups)} tensor groups: {len(probes)} probes (Q8_0, one group at its lowest type), "
                 f"{prepared.info['n_windows']} windows of the calibration text")
    scfg = replace(cfg, eval=settings, runtimes=("transformers", "llama.cpp"), variants=("fp16", *probes), synthetic=None)
    outcomes = build_variants(source, scfg, calib, out / "artifacts" / "probes", console)
    jobs = [j for j in plan_cells(outcomes, prepared, scfg, work, source) if j.variant in ("fp16", *probes)]
    for j in jobs:  # quality only: no speed, no generation
        j.spec = j.spec.with_(speed=False, profile_decode=False, gen_prompts=None)
    from harness.cell_launcher import cell_key, evaluator_code_hash

    code = evaluator_code_hash()
    for j in jobs:
        j.key = cell_key(j.spec, outcomes[j.variant].manifest.cache_key, code)
    cells = {(c.variant, c.runtime): c for c in evaluate(jobs, work / "cells", scfg, console)}
    base_cell = cells.get((BASE_PROBE, "llama.cpp"))
    if base_cell is None or not base_cell.ok or "kld" not in base_cell.result:
        raise RuntimeError(f"the all-Q8_0 probe could not be scored: {getattr(base_cell, 'error', 'missing')}")
    base_ev = _kld_evidence(BASE_PROBE, base_cell)
    rows = []
    for g in groups:
        c = cells.get((f"gguf-probe-{g.name}", "llama.cpp"))
        if c is None or not c.ok or "kld" not in c.result:
            rows.append({"group": g.name, "error": getattr(c, "error", "not scored")})
            continue
        ev = _kld_evidence(f"gguf-probe-{g.name}", c)
        # mean KLD (harness.metrics' definition) and its paired increase over the all-Q8_0 probe, by window
        kld = M.estimate(M.KLD_MEAN, ev, None)
        inc = M.change(M.KLD_MEAN, (ev, None), (base_ev, None))
        m = outcomes[f"gguf-probe-{g.name}"].manifest
        rows.append({"group": g.name, "kind": g.name.split("-")[1] if g.name.startswith("blk") else g.name,
                     "block": int(g.name[3:].split("-")[0]) if g.name.startswith("blk") else None, "values": g.n,
                     "probe_types": sorted(set(g.types(0).values())), "probe_bytes": m.size_bytes,
                     "kld": [kld.value, kld.ci_low, kld.ci_high], "kld_increase": [inc.value, inc.ci_low, inc.ci_high]})
    doc = {"model": source.name, "base_type": "q8_0", "base_kld": M.estimate(M.KLD_MEAN, base_ev, None).value, "windows": prepared.info,
           "method": "per-window mean KLD of the probe minus the all-Q8_0 probe's, paired; percentile bootstrap over "
                     "windows", "kld_method": base_cell.result["kld"]["method"], "groups": rows,
           "probes": len(probes), "seconds": round(time.time() - t0, 1),
           "source_keys": {"gguf-f16": f16.manifest.cache_key, "imatrix": outcomes[BASE_PROBE].manifest.recipe}}
    key = store.area("sensitivity") / f"{f16.manifest.cache_key[:16]}-{prepared.info['windows_sha256'][:12]}-{code[:12]}.json"
    store.write_json(key, doc)
    store.write_json(out / "sensitivity.json", doc)
    ranked = sorted((r for r in rows if "kld_increase" in r), key=lambda r: -r["kld_increase"][0])[:5]
    console.line(f"[sensitivity] done in {doc['seconds']:.0f} s; most sensitive: "
                 + ", ".join(f"{r['group']} +{r['kld_increase'][0]:.4f}" for r in ranked))
    return key, doc


def sensitivity_command(cfg, console) -> int:
    """`quantcompare sensitivity`: the stage alone, with its heat map beside sensitivity.json."""
    from core.paths import CALIBRATION_TEXT
    from harness.source import resolve_source

    source = resolve_source(cfg.model, progress=console.line, trust_remote_code=cfg.trust_remote_code,
                            allow_pickle=cfg.allow_pickle)
    from core.paths import WIKITEXT_TEST
    from harness.shared_inputs import check_calibration

    calib = cfg.calibration or CALIBRATION_TEXT
    check_calibration(calib, source, replace(cfg, sensitivity=True), cfg.eval_text or WIKITEXT_TEST)
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    _, doc = run_sensitivity(source, cfg, calib, out, console)
    try:
        from reports.plots import sensitivity_heatmap

        png = sensitivity_heatmap({"sensitivity": doc})
        if png:
            (out / "sensitivity.png").write_bytes(png)
            console.line(f"wrote {out / 'sensitivity.json'} and {out / 'sensitivity.png'}")
    except ImportError:
        console.line(f"wrote {out / 'sensitivity.json'} (no matplotlib here for the heat map)")
    return 0
