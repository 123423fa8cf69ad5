"""source -> variants -> evaluations -> results.json / results.csv / report.html."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from harness import store
from harness.cell_launcher import CellOutcome
from harness.cell_plan import GpuContext
from harness.cell_runs import check_reference_disk, evaluate, plan_cells
from harness.config import RunConfig
from core import interrupts
from core.errors import UserError
from harness.shared_inputs import check_calibration, prepare_windows
from harness.lock import RunLock
from core.paths import CALIBRATION_TEXT, WIKITEXT_TEST
from harness.results_doc import assemble
from harness.schema import write_csv, write_json_atomic
from harness.source import resolve_source
from harness.synthetic import SHAPES
from harness.stages import StageClock, installs, summary
from harness.variants import build_variants


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


def profile_line(prof: dict | None) -> str:
    """The terminal's word on the profile: its name and the gate rules that cannot decide at its counts."""
    if not prof:
        return ""
    from core.profiles import tally

    t = tally(prof["decidability"])
    cant = [f"{r['rule']} (±{r['half_width']:.3g} at {r['count']} {r['unit']}; needs {r['count_needed']})"
            for r in t["cannot"]]
    return (f"\nprofile {prof['name']}: {t['decide']} of {t['total']} gate rules can decide at these counts"
            + ("; cannot: " + "; ".join(cant) if cant else "")
            + (" (--profile release carries more)" if prof["name"] != "release" else ""))


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
    check_calibration(calib, source, cfg, cfg.eval_text or WIKITEXT_TEST)
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
        clock.add(f"build {v}", "build", o.wall_s, o.cached, "; ".join(filter(None, [o.error, o.node and f"on {o.node}"])))
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
            if cfg.tasks.requests:  # built where lm-eval is installed (an offline GPU host may lack it)
                from evaluators.lm_eval_tasks import load_requests

                task_req = load_requests(cfg.tasks, cfg.tasks.requests, store.area("tasks"))
            else:
                task_req = build_requests(cfg.tasks, source.path, store.area("tasks"))
        console.line(f"[tasks] {len(task_req.pairs)} loglikelihood requests, tokenized once with the source tokenizer")
    gen_prompts, gen_info = [], {}
    if cfg.eval.gen_prompts:
        from harness.gen_prompts import prepare_prompts

        with clock.stage("generation prompts (chat questions, text openings)", "windows"):
            gen_prompts, gen_info = prepare_prompts(source, text, prepared, cfg.eval.gen_prompts, work,
                                                    cfg.eval.gen_seed)
        console.line(f"[generate] {len(gen_prompts)} prompts ({sum(p.set == 'chat' for p in gen_prompts)} chat"
                     f"{' with the model' + chr(39) + 's chat template' if gen_info.get('chat_template') else ''}, "
                     f"{sum(p.set == 'text' for p in gen_prompts)} text openings) x {cfg.eval.gen_tokens} greedy tokens")
    long_probes = None
    if cfg.eval.long_ctx:
        from harness.long_probes import prepare_long

        with clock.stage("long windows (facts planted in long text)", "windows"):
            long_probes = prepare_long(source, text, cfg.eval, work, console)
    instruct, instruct_info = [], {}
    if cfg.eval.instructions:
        from harness.instruct_prompts import prepare_instructions

        with clock.stage("instruction-following prompts", "windows"):
            instruct, instruct_info = prepare_instructions(source, cfg.eval.instructions, cfg.eval.instruct_seed, work,
                                                           cfg.eval.instruct_set)
        console.line(f"[instruct] {len(instruct)} prompts with {sum(len(p.instructions) for p in instruct)} verifiable "
                     f"instructions{' in the model' + chr(39) + 's chat template' if instruct_info.get('chat_template') else ''}"
                     f" x {cfg.eval.instruct_tokens} greedy tokens")
    jobs = plan_cells(variant_outcomes, prepared, cfg, work, source, task_req, gen_prompts, long_probes, instruct)
    ref_job = next((j for j in jobs if j.spec.write_reference), None)
    if ref_job is not None:
        check_reference_disk(Path(ref_job.spec.reference_dir), prepared, source, cfg)
    all_cells = evaluate(jobs, out / "cells", cfg, console)
    for c in all_cells:
        what = {"tasks": "lm-eval", "long": "long windows", "instruct": "instructions"}.get(c.kind, "evaluate")
        busy = (c.result or {}).get("gpu_busy") or {}
        clock.add(f"{what} {c.variant} × {c.runtime}", c.kind if c.kind in ("tasks", "long", "instruct") else "cell",
                  c.run_s, c.cached, "; ".join(filter(None, ["" if c.ok or c.unsupported is None else "unsupported",
                                                            c.node and f"on {c.node}"])), busy.get("all"))
        gen = (c.result or {}).get("generation") if c.kind == "quality" else None
        if gen:  # the generation stage of the cell just above, inside its time (not added to the total)
            clock.add(f"  of which generation ({len(gen['tokens'])} prompts)", "generation", gen["seconds"], c.cached,
                      "inside the cell above", busy.get("generation"))
    cells = [c for c in all_cells if c.kind == "quality"]
    task_cells = [c for c in all_cells if c.kind == "tasks"]
    long_cells = [c for c in all_cells if c.kind == "long"]
    instruct_cells = [c for c in all_cells if c.kind == "instruct"]
    with clock.stage("lm-eval metrics from the cells' scores", "tasks"):
        # random weights: the task cells are timed, not scored (no quality figure of a synthetic model)
        scores = score_task_cells(task_cells, task_req, store.area("tasks")) if task_req and not cfg.synthetic else {}
    bandwidth = cached_bandwidth(cfg.eval.threads, console, cfg.eval.device)
    with clock.stage("results (assemble, checks)", "report"):
        results = assemble(source, cfg, prepared, variant_outcomes, cells, console, scores, task_cells, bandwidth,
                           (gen_prompts, gen_info), (long_probes, long_cells), (instruct, instruct_info, instruct_cells))
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
    interrupts.check()  # an interrupted run never writes results that look complete
    # the record first: whatever happens while the page is drawn, results.json and results.csv exist
    write_json_atomic(out / "results.json", results)
    write_csv(out / "results.csv", results["rows"])
    if write_report:
        # rendered once: its own time goes to results.json and the terminal, not into the page itself
        from harness.gate.preview import default_limits, default_ship

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
    console.line(profile_line(results.get("profile")))
    console.line("\nstages:\n" + summary(results["stages"]))
    console.line(f"\nwrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'report.html'}, {out / 'run.log'} "
                 f"in {time.time() - t_start:.1f} s")
    bad = [f for f in results["flags"] if f["level"] in ("broken", "error")]
    return 1 if bad else 0
