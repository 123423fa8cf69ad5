"""`quantcompare` command line: compare, bench, gate, report, cache, list.

compare and bench share one parent parser, made from the option dataclasses (core.settings, and each
runtime's own, core.registry); `--config FILE` (TOML, or a results.json whose run it repeats) gives any of
them, and flags given on the command line override the file."""
from __future__ import annotations

import argparse
import errno
import sys
from dataclasses import replace
from pathlib import Path

from core import interrupts, registry
from core.errors import UserError
from core.options import add_group, sections_from_args
from core.settings import AwqRecipe, EvalSettings, RunOptions, TaskSettings
from harness.config import RunConfig, merge, read_config_file, resolve

# bench measures the harness against llama-perplexity on its own protocol: the first windows, exact KLD
BENCH_PROTOCOL = {"eval": {"window_choice": "first", "kld_top_k": 0}}
BENCH_RUN_OPTIONS = ("model", "out", "eval_text", "plugins")


def version_text() -> str:
    from importlib import metadata

    from harness.provenance import git_commit

    try:
        v = metadata.version("quantcompare")
    except metadata.PackageNotFoundError:
        v = "unknown"
    return f"quantcompare {v} (commit {git_commit()})"


def common_parser(compare: bool, run_options: tuple[str, ...] = BENCH_RUN_OPTIONS) -> argparse.ArgumentParser:
    """The options compare and bench share (one parent), and compare's own when `compare`."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("configuration")
    g.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="a run.toml with [run] [eval] [tasks] [awq] [runtime.\"<name>\"] sections, or a results.json "
                        "whose run to repeat; command-line flags override it")
    run = p.add_argument_group("run", RunOptions.__doc__)
    for action in _actions_of(RunOptions, "run"):
        if compare or action.dest.split(".", 1)[1] in run_options:
            run._group_actions.append(action)
            p._add_action(action)
    if compare:
        run.add_argument("--note", dest="run.notes", action="append", default=argparse.SUPPRESS,
                         help="a statement the report must carry (repeatable)")
    add_group(p, EvalSettings, "eval", "evaluation")
    ev = next(a for a in p._action_groups if a.title == "evaluation")
    ev.add_argument("--kld-exact", dest="eval.kld_top_k", action="store_const", const=0, default=argparse.SUPPRESS,
                    help="keep fp16's whole distribution on disk, so every KLD is exact as llama-perplexity's (disk: "
                         "scored tokens × vocabulary × 4 bytes, e.g. 2.4 GB for 48 windows of a 49k vocabulary; refused "
                         "when it will not fit)")
    if compare:
        add_group(p, TaskSettings, "tasks", "lm-eval tasks")
        add_group(p, AwqRecipe, "awq", "AWQ recipe")
    for name, info in registry.runtimes().items():
        if info.options is not None and (compare or name == "llama.cpp"):
            add_group(p, info.options, info.section, f"runtime {name}", prefix=info.prefix)
    return p


def _actions_of(cls, section: str) -> list[argparse.Action]:
    scratch = argparse.ArgumentParser(add_help=False)
    add_group(scratch, cls, section, section)
    return [a for a in scratch._actions if a.dest.startswith(section + ".")]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantcompare", description="Quantize one FP16 LLM into GGUF and AWQ variants "
                                "and measure, fairly, what each loses in quality and gains in size and speed.")
    p.add_argument("--version", action="version", version=version_text())
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", parents=[common_parser(compare=True)],
                       help="quantize, evaluate, write results.json/csv and report.html")
    c.add_argument("--gate", type=Path, default=None, metavar="POLICY",
                   help="after the run, gate it with this policy ('default' for the shipped one); the exit code is the verdict's")
    b = sub.add_parser("bench", parents=[common_parser(compare=False)],
                       help="the harness vs llama-perplexity and llama-bench on the same GGUF files; writes bench.json "
                            "(bench's protocol: --window-choice first and --kld-exact unless given)")
    b.add_argument("--tools", type=Path, default=Path(".cache/llama.cpp-build/bin"),
                   help="folder with llama-perplexity and llama-bench (`make tools`)")
    b.add_argument("--rounds", type=int, default=3, help="alternating harness/tool speed rounds (medians compared)")
    s = sub.add_parser("sensitivity", parents=[common_parser(False, (*BENCH_RUN_OPTIONS, "executor", "ray_address"))],
                       help="how much each tensor group matters: one group at a time at its lowest type, the rest Q8_0 "
                            "(llama-quantize probes scored on the calibration text); writes sensitivity.json and .png")
    s.add_argument("--calib", dest="run.calib", type=Path, default=argparse.SUPPRESS, help="calibration text")
    g = sub.add_parser("gate", help="decide, with paired statistics, whether each variant may ship (exit 0 pass, 1 fail, 3 inconclusive)")
    g.add_argument("results", type=Path, nargs="?", help="results.json of a run")
    g.add_argument("--policy", type=Path, default=None, help="policy TOML (default: the shipped default policy)")
    g.add_argument("--baseline", type=Path, default=None, help="results.json of the previous release, for the baseline rules")
    g.add_argument("--unpaired-baseline", action="store_true",
                   help="allow a baseline measured on other windows (an unpaired comparison, and said so)")
    g.add_argument("--seed", type=int, default=None, help="bootstrap seed (default: the policy's)")
    g.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default: the policy's)")
    g.add_argument("--out", type=Path, default=None, help="folder for verdict.json/verdict.md (default: beside results.json)")
    g.add_argument("--print-default-policy", action="store_true", help="print the shipped default policy and exit")
    k = sub.add_parser("cache", help="the shared store of artifacts and cell results: ls, prune")
    k.add_argument("action", choices=("ls", "prune"), help="ls: list entries; prune: remove some")
    k.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="prune: entries unused for this long")
    k.add_argument("--max-size", type=float, default=None, metavar="GB", help="prune: least recently used first, down to this size")
    k.add_argument("--all", action="store_true", help="prune: everything")
    r = sub.add_parser("report", help="re-render report.html from a results.json (e.g. one written on another machine)")
    r.add_argument("results", type=Path, help="results.json")
    r.add_argument("--out", type=Path, default=None, help="report file (default: report.html beside results.json)")
    ls = sub.add_parser("list", help="what exists: variants, runtimes or tasks")
    ls.add_argument("what", choices=("variants", "runtimes", "tasks"), help="which registry to list")
    return p


def _prescan(argv: list[str]) -> tuple[Path | None, list[str]]:
    """--config and --plugins before the parser is built: plugins add runtimes, and so options."""
    config, plugins = None, []
    for i, a in enumerate(argv):
        for name in ("--config", "--plugins"):
            value = a.split("=", 1)[1] if a.startswith(name + "=") else argv[i + 1] if a == name and i + 1 < len(argv) else None
            if value is None:
                continue
            if name == "--config":
                config = Path(value)
            else:
                plugins += [m.strip() for m in value.split(",") if m.strip()]
    return config, plugins


def models_given(argv: list[str], file_sections: dict) -> list[str]:
    """Every --model of the command line (repeatable), else the config file's [run] models."""
    found = []
    for i, a in enumerate(argv):
        if a.startswith("--model="):
            found.append(a.split("=", 1)[1])
        elif a == "--model" and i + 1 < len(argv):
            found.append(argv[i + 1])
    return found or list(file_sections.get("run", {}).get("models", []))


def compare_command(args, argv: list[str], file_sections: dict) -> int:
    from harness.console import Console
    from harness.pipeline import run_compare

    cfg = run_config(args, file_sections)
    models = models_given(argv, file_sections)

    def run_one(c: RunConfig, console) -> int:
        code = run_compare(c, console)
        if args.gate is None:
            return code
        from harness.gate.command import run_gate

        results = c.out / "results.json"
        if not results.is_file():
            raise UserError(f"no results to gate ({results} was not written)")
        return run_gate(results, None if str(args.gate) == "default" else args.gate, console=console.line)

    if len(models) > 1:
        from harness.config import slug
        from harness.multi_model import run_models

        if "out" not in merge(file_sections, sections_from_args(args)).get("run", {}):
            cfg = replace(cfg, out=Path("runs") / "models")
        return run_models(cfg, models, run_one, lambda c: Console(prefix=f"[{slug(c.model)}] "))
    return run_one(cfg, Console())


def run_config(args, file_sections: dict, base: dict | None = None) -> RunConfig:
    """Defaults < `base` (bench's protocol) < the config file < the command line."""
    return resolve(merge(base or {}, file_sections, sections_from_args(args)))


def bench_config(args, file_sections: dict) -> RunConfig:
    cfg = run_config(args, file_sections, BENCH_PROTOCOL)
    return replace(cfg, variants=("gguf-f16", "gguf-q4_k_m"), runtimes=("llama.cpp",),
                   out=cfg.out if "out" in merge(file_sections, sections_from_args(args)).get("run", {}) else Path("runs/bench"))


def list_command(what: str) -> int:
    if what == "runtimes":
        for name, info in registry.runtimes().items():
            env = f"environment .venvs/{info.env}" if info.env else "harness environment"
            default = " (default)" if info.default else ""
            print(f"{name}{default}: {info.summary}\n    reads {', '.join(info.formats)}"
                  + (f"; dequantized reference for {', '.join(info.dequant_formats)}" if info.dequant_formats else "")
                  + f"; {env}; defined in {info.module}")
        return 0
    if what == "variants":
        for q in registry.quantizers():
            if q.hidden:
                continue
            names = list(q.variants)
            shown = ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:4])}, … ({len(names)} names)"
            default = f" (default: {', '.join(q.default)})" if q.default else ""
            print(f"{q.cls.__name__}{default}: {q.summary}\n    {shown}")
            if len(names) > 6:
                print("    all: " + " ".join(names))
        return 0
    from evaluators.lm_eval_tasks import LOCAL_TASKS

    for t in LOCAL_TASKS:
        print(f"{t}{' (default)' if t in TaskSettings().tasks else ''}")
    return 0


def cache_command(a) -> int:
    import time

    from harness import store

    if a.action == "ls":
        items = store.entries()
        for e in items:
            print(f"{e.kind:10s} {e.bytes / 1e6:10.1f} MB  {time.strftime('%Y-%m-%d %H:%M', time.localtime(e.last_used))}  {e.name}")
        print(f"{len(items)} entries, {sum(e.bytes for e in items) / 1e9:.2f} GB in {store.store_dir()}")
        return 0
    if a.older_than is None and a.max_size is None and not a.all:
        raise UserError("cache prune needs --older-than DAYS, --max-size GB or --all")
    gone = store.prune(a.older_than, None if a.max_size is None else int(a.max_size * 1e9), a.all)
    print(f"removed {len(gone)} entries, {sum(e.bytes for e in gone) / 1e9:.2f} GB, from {store.store_dir()}")
    return 0


def render_report(results_file: Path, out: Path | None) -> int:
    import json

    try:
        results = json.loads(results_file.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read results '{results_file}': {e}") from None
    if "rows" not in results or "cells" not in results:
        raise UserError(f"'{results_file}' is not a quantcompare results.json")
    from reports.html import write_report

    target = out or results_file.with_name("report.html")
    verdict = None
    try:  # a verdict of these very results, written by `quantcompare gate`, is shown at the top
        v = json.loads(results_file.with_name("verdict.json").read_text())
        if v.get("results", {}).get("created_at") == results.get("created_at"):
            verdict = v
    except (OSError, ValueError):
        pass
    from harness.gate.preview import default_limits, default_ship

    if verdict:  # beside a verdict, the verdict's own intervals (its policy's bootstrap)
        from evaluators.stats import Bootstrap
        from harness.results_doc import with_bootstrap

        b = verdict["bootstrap"]
        results = with_bootstrap(results, Bootstrap(int(b["seed"]), int(b["resamples"]), float(b["confidence"])))
    write_report(results, target, verdict=verdict, limits=default_limits(), ship=None if verdict else default_ship(results))
    print(f"wrote {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    interrupts.install()
    try:
        from harness import plugins

        config_file, extra = _prescan(argv)
        file_sections = read_config_file(config_file) if config_file is not None else {}
        plugins.load([*file_sections.get("run", {}).get("plugins", []), *extra])
    except UserError as e:
        if debug:
            raise
        print(f"quantcompare: error: {e}", file=sys.stderr)
        return e.exit_code
    args = build_parser().parse_args(argv)
    try:
        if args.command == "compare":
            return compare_command(args, argv, file_sections)
        if args.command == "gate":
            from harness.gate.command import print_default_policy, run_gate

            if args.print_default_policy:
                return print_default_policy()
            if args.results is None:
                raise UserError("gate needs a results.json (or --print-default-policy)")
            return run_gate(args.results, args.policy, args.baseline, args.unpaired_baseline, args.seed, args.resamples,
                            args.out)
        if args.command == "cache":
            return cache_command(args)
        if args.command == "report":
            return render_report(args.results, args.out)
        if args.command == "list":
            return list_command(args.what)
        if args.command == "sensitivity":
            from harness.console import Console
            from harness.sensitivity import sensitivity_command

            return sensitivity_command(run_config(args, file_sections), Console())
        if args.command == "bench":
            from harness.bench import run_bench
            from harness.console import Console

            return run_bench(bench_config(args, file_sections), args.tools, Console(), rounds=args.rounds)
    except UserError as e:
        if args.debug:
            raise
        print(f"quantcompare: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("quantcompare: interrupted; earlier results are untouched (files are replaced only when complete)", file=sys.stderr)
        return 130
    except OSError as e:
        if args.debug:
            raise
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            print(f"quantcompare: error: no space left for {e.filename or 'a file'} ({e.strerror}); free some disk "
                  "(`quantcompare cache prune`) and run again: finished work is kept and reused", file=sys.stderr)
            return 2
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
            print(f"quantcompare: error: cannot write {e.filename or ''}: {e.strerror}", file=sys.stderr)
            return 2
        print(f"quantcompare: error: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    except Exception as e:  # a bug or an unforeseen fault: one line, the traceback only when asked for
        if args.debug:
            raise
        print(f"quantcompare: internal error: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
