"""source -> variants -> evaluations -> results.json / results.csv / report.html."""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
import time
from pathlib import Path

from harness import store
from harness.cell_plan import CellPlanner, GpuContext, needs_dequant_reference, runtimes_for
from harness.cell_launcher import CellJob, CellOutcome, cell_key, evaluator_code_hash, load_cached, run_cell
from harness.config import RunConfig
from core.errors import UserError
from harness.host import environment_fingerprint, measured_here, this_host
from harness.shared_inputs import check_calibration, prepare_windows
from harness.lock import RunLock
from core.paths import CALIBRATION_TEXT, WIKITEXT_TEST
from harness.metrics import REFERENCE
from harness.results_doc import assemble
from harness.schema import write_csv, write_json_atomic
from harness.source import resolve_source
from harness.synthetic import SHAPES
from harness.stages import StageClock, installs, summary
from harness.variants import build_variants

CELL_TIMEOUT_S = 3600.0


def reference_dir(outcomes, prepared, cfg: RunConfig, code: str) -> Path:
    """Where the fp16 reference cell keeps its per-window top-k: in the shared store, keyed by what
    determines its content (the fp16 artifact, the windows, k, device and the evaluator code)."""
    ref = outcomes.get(REFERENCE[0])
    parts = [ref.manifest.cache_key if ref and ref.manifest else "none", prepared.info["windows_sha256"],
             cfg.eval.kld_top_k, cfg.eval.device, code, this_host().device_class(cfg.eval.device),
             environment_fingerprint()["sha256"]]
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]
    return store.area("references") / f"{key}-k{cfg.eval.kld_top_k}"


def check_reference_disk(ref_dir: Path, prepared, source, cfg: RunConfig) -> None:
    """An exact KLD keeps fp16's whole distribution: refuse, before anything is scored, when it cannot fit."""
    if cfg.eval.kld_top_k > 0 or (ref_dir / "COMPLETE").is_file() or cfg.synthetic:
        return
    try:
        vocab = int(json.loads((source.path / "config.json").read_text())["vocab_size"])
    except (OSError, ValueError, KeyError):
        return
    positions = int(prepared.info["scored_tokens"])
    need = positions * vocab * 4
    ref_dir.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(ref_dir.parent).free
    if need + (1 << 30) > free:
        raise UserError(f"--kld-exact keeps fp16's whole distribution: {positions:,} positions × {vocab:,} tokens × 4 "
                        f"bytes = {need / 1e9:.2f} GB (about {1000 * vocab * 4 / 1e6:.0f} MB per 1,000 tokens), and "
                        f"{ref_dir.parent} has {free / 1e9:.2f} GB free (1 GB is kept spare); free space "
                        "(quantcompare cache prune), use fewer --windows, or drop --kld-exact")


def plan_cells(outcomes, prepared, cfg: RunConfig, work: Path, source=None, task_req=None,
               gen_prompts: list | None = None) -> list[CellJob]:
    """Every (variant, runtime) pair whose runtime reads the variant's format (reference first),
    then one lm-eval task cell per pair when tasks are asked for."""
    code = evaluator_code_hash()
    planner = CellPlanner(cfg, prepared, work, source, reference_dir(outcomes, prepared, cfg, code), GpuContext.of(cfg, source),
                          gen_prompts)
    jobs = []
    for v, o in outcomes.items():
        if o.manifest is None:
            continue
        for r in runtimes_for(o.manifest.format, cfg.runtimes, dequant=needs_dequant_reference(v, cfg)):
            spec = planner.quality(v, o, r, has_reference=REFERENCE[0] in outcomes)
            jobs.append(CellJob(v, r, spec, cell_key(spec, o.manifest.cache_key, code)))
            if task_req is not None:
                tspec = planner.tasks(spec, task_req)
                jobs.append(CellJob(v, r, tspec, cell_key(tspec, o.manifest.cache_key, code)))
    # the fp16 reference first; dequantized references (only read by the kernel checks) last
    jobs.sort(key=lambda j: (j.kind != "quality", (j.variant, j.runtime) != REFERENCE,
                             j.spec.role == "dequantized-reference"))
    return jobs


def evaluate(jobs: list[CellJob], cells_dir: Path, cfg: RunConfig, console) -> list[CellOutcome]:
    outcomes = []
    ref_ok = True
    for job in jobs:
        if job.spec.reference_dir and not job.spec.write_reference and not ref_ok:
            job.spec = job.spec.with_(reference_dir=None)  # no reference: PPL and speed only
        what = "lm-eval tasks" if job.kind == "tasks" else f"{job.spec.n_ctx}-token windows"
        stage = "[tasks]" if job.kind == "tasks" else "[eval]"
        t0 = time.time()
        cached = None if cfg.force else load_cached(cells_dir, job)
        if cached:
            where = "" if measured_here(cached.measured_on) else \
                f", measured on {(cached.measured_on or {}).get('hostname', 'an unrecorded host')} (same device class and libraries)"
            console.line(f"{stage} {job.variant} × {job.runtime}: cached result reused (it took {cached.wall_s:.0f} s{where})")
            cached.run_s = time.time() - t0
            outcomes.append(cached)
            continue
        console.line(f"{stage} {job.variant} × {job.runtime}: {what}, {cfg.eval.threads} threads")
        o = run_cell(job, cells_dir, console, CELL_TIMEOUT_S, cfg.eval.threads)
        o.run_s = time.time() - t0
        if o.ok:
            console.line(f"{stage} {job.variant} × {job.runtime}: done in {o.wall_s:.0f} s")
        elif o.unsupported:
            console.line(f"{stage} {job.variant} × {job.runtime}: not supported here: {o.unsupported}")
        else:
            console.alarm(f"{stage} {job.variant} × {job.runtime} FAILED: {o.error}")
        if job.spec.write_reference and not o.ok:
            ref_ok = False
        outcomes.append(o)
    return outcomes


def score_task_cells(task_cells: list[CellOutcome], task_req, work: Path) -> dict[tuple[str, str], dict]:
    """lm-eval metrics for every task cell that finished."""
    from evaluators.lm_eval_tasks import score_tasks

    scores = {}
    for c in task_cells:
        if c.ok:
            scores[(c.variant, c.runtime)] = score_tasks(task_req, c.result["loglikelihoods"], work)
    return scores


def cached_bandwidth(threads: int, console, device: str = "cpu") -> dict | None:
    """Memory bandwidth for the decode roofline, measured once per machine and thread count (shared store)."""
    from evaluators.roofline import measure_bandwidth

    host = socket.gethostname()
    f = store.area("machine") / (f"bandwidth-{host}-t{threads}.json" if device == "cpu" else f"bandwidth-{host}-{device}.json")
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        pass
    try:
        bw = measure_bandwidth(threads, device=device)
    except (RuntimeError, OSError, ValueError) as e:
        console.line(f"[roofline] bandwidth not measured: {e}")
        return None
    console.line(f"[roofline] memory bandwidth ({bw['method']}): {bw['gb_s']:.1f} GB/s")
    f.write_text(json.dumps(bw))
    return bw


def run_compare(cfg: RunConfig, console) -> int:
    t_start = time.time()
    clock = StageClock()
    clock.stages += installs()
    from harness.cell_launcher import cell_python

    for r in cfg.runtimes:
        cell_python(r, console.line)  # a runtime's own environment must exist (or be made) before anything is built
    if cfg.synthetic in SHAPES:  # a model that cannot fit the GPUs is an error before its weights are made
        GpuContext.check_fits(cfg, SHAPES[cfg.synthetic])
    with clock.stage("source (resolve; the default model is converted once)", "source"):
        source = resolve_source(cfg.model, progress=console.line, synthetic=cfg.synthetic, tokenizer_dir=cfg.tokenizer_dir,
                                trust_remote_code=cfg.trust_remote_code, allow_pickle=cfg.allow_pickle)
    if not cfg.synthetic and (source.path / "config.json").is_file():
        GpuContext.check_fits(cfg, json.loads((source.path / "config.json").read_text()))
    console.line(f"[source] {source.name} ({source.origin}, {source.model_type}, {source.n_params / 1e6:.1f} M params, {source.dtype}) at {source.path}")
    calib = cfg.calibration or CALIBRATION_TEXT
    check_calibration(calib, source, cfg)
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the output folder '{cfg.out}': {e.strerror or e}") from None
    try:
        lock = RunLock(cfg.out, console.line).acquire()
    except OSError as e:
        raise UserError(f"cannot write into the output folder '{cfg.out}': {e.strerror or e}") from None
    try:
        return _compare(cfg, console, clock, source, calib, t_start)
    finally:
        lock.release()


def _compare(cfg: RunConfig, console, clock: StageClock, source, calib: Path, t_start: float) -> int:
    out = cfg.out
    work = out / "work"
    text = cfg.eval_text or WIKITEXT_TEST
    with clock.stage("windows (tokenize the evaluation text)", "windows"):
        prepared = prepare_windows(source, text, cfg.eval, work)
    info = prepared.info
    console.attach_log(out / "run.log")  # once the inputs are known good: a refused run leaves OUT as it was
    console.line(f"[windows] {info['n_windows']} of {info['windows_available']} windows × {info['n_ctx']} tokens "
                 f"from {info['text_file']}, {info['scored_tokens']} scored tokens")
    sensitivity = None
    if cfg.sensitivity and not cfg.synthetic:
        from harness.sensitivity import run_sensitivity

        with clock.stage("sensitivity (one tensor group at a time, on the calibration text)", "sensitivity"):
            sens_path, sensitivity = run_sensitivity(source, cfg, calib, out, console)
    variant_outcomes = build_variants(source, cfg, calib, out / "artifacts", console,
                                      sens_path if sensitivity else None)
    for v, o in variant_outcomes.items():
        clock.add(f"build {v}", "build", o.wall_s, o.cached, o.error or "")
    if cfg.build_only:
        built = [v for v, o in variant_outcomes.items() if o.manifest]
        console.line(f"built {', '.join(built) or 'nothing'} under {out / 'artifacts'} (--build-only: nothing evaluated)")
        return 0 if len(built) == len(variant_outcomes) else 1
    task_req = None
    if cfg.tasks.tasks:
        from evaluators.lm_eval_tasks import build_requests

        console.line(f"[tasks] lm-eval {', '.join(cfg.tasks.tasks)}: {cfg.tasks.num_fewshot}-shot, "
                     f"limit {cfg.tasks.limit or 'none'}; preparing requests")
        with clock.stage("lm-eval requests (built once, tokenized with the source tokenizer)", "tasks"):
            task_req = build_requests(cfg.tasks, source.path, store.area("tasks"))
        console.line(f"[tasks] {len(task_req.pairs)} loglikelihood requests, tokenized once with the source tokenizer")
    gen_prompts, gen_info = [], {}
    if cfg.eval.gen_prompts and not cfg.synthetic:
        from harness.gen_prompts import prepare_prompts

        with clock.stage("generation prompts (chat questions, text openings)", "windows"):
            gen_prompts, gen_info = prepare_prompts(source, text, prepared, cfg.eval.gen_prompts, work)
        console.line(f"[generate] {len(gen_prompts)} prompts ({sum(p.set == 'chat' for p in gen_prompts)} chat"
                     f"{' with the model' + chr(39) + 's chat template' if gen_info.get('chat_template') else ''}, "
                     f"{sum(p.set == 'text' for p in gen_prompts)} text openings) x {cfg.eval.gen_tokens} greedy tokens")
    jobs = plan_cells(variant_outcomes, prepared, cfg, work, source, task_req, gen_prompts)
    ref_job = next((j for j in jobs if j.spec.write_reference), None)
    if ref_job is not None:
        check_reference_disk(Path(ref_job.spec.reference_dir), prepared, source, cfg)
    all_cells = evaluate(jobs, out / "cells", cfg, console)
    for c in all_cells:
        what = "lm-eval" if c.kind == "tasks" else "evaluate"
        clock.add(f"{what} {c.variant} × {c.runtime}", "tasks" if c.kind == "tasks" else "cell",
                  c.run_s, c.cached, "" if c.ok or c.unsupported is None else "unsupported")
        gen = (c.result or {}).get("generation") if c.kind == "quality" else None
        if gen:  # the generation stage of the cell just above, inside its time (not added to the total)
            clock.add(f"  of which generation ({len(gen['tokens'])} prompts)", "generation", gen["seconds"], c.cached,
                      "inside the cell above")
    cells = [c for c in all_cells if c.kind == "quality"]
    task_cells = [c for c in all_cells if c.kind == "tasks"]
    with clock.stage("lm-eval metrics from the cells' scores", "tasks"):
        scores = score_task_cells(task_cells, task_req, store.area("tasks")) if task_req else {}
    bandwidth = cached_bandwidth(cfg.eval.threads, console, cfg.eval.device)
    with clock.stage("results (assemble, checks)", "report"):
        results = assemble(source, cfg, prepared, variant_outcomes, cells, console, scores, task_cells, bandwidth,
                           (gen_prompts, gen_info))
        if sensitivity:
            results["sensitivity"] = sensitivity
    t_report = time.time()
    try:
        from reports.html import write_report
        from reports.tables import terminal_table
    except ImportError as e:  # a bare GPU host may lack pandas/matplotlib: results.json is the record
        write_report = terminal_table = None
        console.line(f"report not written here ({e}); render it elsewhere with `quantcompare report {out / 'results.json'}`")
    results["stages"] = clock.as_list()
    results["run"]["wall_s"] = round(time.time() - t_start, 1)
    # the record first: whatever happens while the page is drawn, results.json and results.csv exist
    write_json_atomic(out / "results.json", results)
    write_csv(out / "results.csv", results["rows"])
    if write_report:
        # rendered once: its own time goes to results.json and the terminal, not into the page itself
        from harness.gate.policy import default_limits, default_ship

        write_report(results, out / "report.html", limits=default_limits(), ship=default_ship(results))
        clock.add("report (report.html)", "report", time.time() - t_report)
        results["stages"] = clock.as_list()
        results["run"]["wall_s"] = round(time.time() - t_start, 1)
        write_json_atomic(out / "results.json", results)
    if terminal_table:
        console.line("")
        console.line(terminal_table(results))
    for f in results["flags"]:
        (console.alarm if f["level"] in ("broken", "error") else console.line)(
            f"{f['level'].upper()}: {f['variant']}{' × ' + f['runtime'] if f['runtime'] else ''}: {f['message']}")
    console.line("\nstages:\n" + summary(results["stages"]))
    console.line(f"\nwrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'report.html'}, {out / 'run.log'} "
                 f"in {time.time() - t_start:.1f} s")
    bad = [f for f in results["flags"] if f["level"] in ("broken", "error")]
    return 1 if bad else 0
