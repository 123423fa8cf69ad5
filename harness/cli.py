"""`quantcompare` command line: compare (and more to come)."""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from pathlib import Path

from harness.config import (AWQ_BACKENDS, DEFAULT_VARIANTS, AwqRecipe, EvalSettings, RunConfig, default_threads, is_variant,
                            variants_help)
from evaluators.backends import ALL_RUNTIMES, DEFAULT_RUNTIMES
from harness.errors import UserError
from evaluators.tasks import SUPPORTED_TASKS, TaskSettings


def _slug(model: str | None) -> str:
    if not model:
        return "smollm2-135m-instruct"
    name = Path(model.rstrip("/")).name if os.path.sep in model or os.path.exists(model) else model
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "model"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantcompare", description="Quantize one FP16 LLM into GGUF Q4_K_M and AWQ INT4 and measure every variant fairly.")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="quantize, evaluate, write results.json/csv and report.html")
    c.add_argument("--model", default=None, help="local HF model folder or hub id (default: embedded SmolLM2-135M-Instruct)")
    c.add_argument("--out", type=Path, default=None, help="run folder (default runs/<model-slug>/)")
    c.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated variants (default {','.join(DEFAULT_VARIANTS)}): {variants_help()}")
    c.add_argument("--windows", type=int, default=EvalSettings.max_windows, help="number of evaluation windows (0 = all)")
    c.add_argument("--window-choice", choices=("spread", "first"), default=EvalSettings.window_choice,
                   help="spread: a seeded random sample of the text's windows, in text order; first: the first ones "
                        "(llama-perplexity --chunks)")
    c.add_argument("--window-seed", type=int, default=EvalSettings.window_seed, help="seed of the spread window choice")
    c.add_argument("--n-ctx", type=int, default=512, help="window length in tokens")
    c.add_argument("--score-from", type=float, default=0.5, help="score tokens from this fraction of each window on")
    c.add_argument("--threads", type=int, default=None, help="CPU threads for every runtime (default: physical cores)")
    c.add_argument("--kld-top-k", type=int, default=256, help="reference top-k kept per position for KL divergence "
                   "(a lower bound of the KLD; 0: the whole vocabulary, as --kld-exact)")
    c.add_argument("--kld-exact", action="store_true", help="keep fp16's whole distribution on disk, so every KLD is "
                   "exact as llama-perplexity's (disk: scored tokens × vocabulary × 4 bytes, e.g. 2.4 GB for 48 "
                   "windows of a 49k vocabulary; refused when it will not fit)")
    c.add_argument("--decode-tokens", type=int, default=128)
    c.add_argument("--prefill-tokens", type=int, default=512)
    c.add_argument("--speed-repeats", type=int, default=3)
    c.add_argument("--runtimes", default=",".join(DEFAULT_RUNTIMES),
                   help=f"comma-separated subset of {','.join(ALL_RUNTIMES)} (vllm needs `make setup-vllm`)")
    c.add_argument("--tasks", default=",".join(TaskSettings.tasks),
                   help=f"lm-eval tasks, comma-separated, from {','.join(SUPPORTED_TASKS)}; 'none' to skip")
    c.add_argument("--limit", type=int, default=TaskSettings.limit, help="examples per task (0 = all)")
    c.add_argument("--num-fewshot", type=int, default=TaskSettings.num_fewshot)
    c.add_argument("--sparse-top-k", type=int, default=EvalSettings.sparse_top_k,
                   help="top-k log-probs asked from runtimes without full logits (vLLM), for KLD/top-1")
    c.add_argument("--vllm-dtype", default=EvalSettings.vllm_dtype, help="vLLM compute dtype; auto: float32 where the checkpoint allows it (exact), bfloat16 for quantized kernels")
    c.add_argument("--llama-flash-attn", choices=("off", "on"), default=EvalSettings.llama_flash_attn,
                   help="llama.cpp flash attention (off: exact attention; on: what llama.cpp's tools pick on CPU)")
    c.add_argument("--gpus", type=int, default=0, help="GPUs to use with --device cuda (0: every visible one); a cell "
                   "takes the fewest that hold it and is split across them when it needs more than one")
    c.add_argument("--llama-split-mode", choices=("layer", "row"), default=EvalSettings.llama_split_mode,
                   help="how llama.cpp splits a model across GPUs (its -sm)")
    c.add_argument("--serving-batches", default="1,8,32", help="vLLM throughput sweep batch sizes")
    c.add_argument("--awq-backend", choices=AWQ_BACKENDS, default="autoawq")
    c.add_argument("--awq-calib-samples", type=int, default=AwqRecipe.calib_samples)
    c.add_argument("--awq-calib-seq-len", type=int, default=AwqRecipe.calib_seq_len)
    c.add_argument("--calib", type=Path, default=None, help="calibration text (.txt or .jsonl with a 'text' field)")
    c.add_argument("--eval-text", type=Path, default=None, help="evaluation text (default: shipped WikiText-2 raw test)")
    c.add_argument("--force", action="store_true", help="rebuild artifacts and re-run every cell")
    c.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where runtimes run and AWQ calibrates (cuda: float16, llama.cpp offloads every layer)")
    c.add_argument("--synthetic-weights", metavar="SHAPE", default=None,
                   help="performance only: a model of this shape (qwen3-4b, qwen3-32b, llama-70b, tiny-qwen3) with random weights; no quality metrics")
    c.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder for --synthetic-weights (default: embedded SmolLM2)")
    c.add_argument("--decode-batches", default="1", help="decode tok/s at these batch sizes (e.g. 1,8)")
    c.add_argument("--kernel-check-tokens", type=int, default=0,
                   help="check each quantized runtime's logits on this many tokens against the dequantized weights (0: off)")
    c.add_argument("--note", action="append", default=[], help="a statement the report must carry (repeatable)")
    c.add_argument("--build-only", action="store_true", help="build (or reuse) the variants, evaluate nothing")
    c.add_argument("--trust-remote-code", action="store_true",
                   help="accept a source that ships its own modelling code (auto_map); transformers' built-in implementation reads it")
    c.add_argument("--allow-pickle", action="store_true",
                   help="accept pickle .bin weights (read with torch's weights-only loader, rewritten as safetensors)")
    c.add_argument("--gate", type=Path, default=None, metavar="POLICY",
                   help="after the run, gate it with this policy ('default' for the shipped one); the exit code is the verdict's")
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
    k.add_argument("action", choices=("ls", "prune"))
    k.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="prune: entries unused for this long")
    k.add_argument("--max-size", type=float, default=None, metavar="GB", help="prune: least recently used first, down to this size")
    k.add_argument("--all", action="store_true", help="prune: everything")
    r = sub.add_parser("report", help="re-render report.html from a results.json (e.g. one written on another machine)")
    r.add_argument("results", type=Path, help="results.json")
    r.add_argument("--out", type=Path, default=None, help="report file (default: report.html beside results.json)")
    b = sub.add_parser("bench", help="the harness vs llama-perplexity and llama-bench on the same GGUF files; writes bench.json")
    b.add_argument("--model", default=None, help="local HF model folder or hub id (default: embedded SmolLM2-135M-Instruct)")
    b.add_argument("--out", type=Path, default=Path("runs/bench"))
    b.add_argument("--tools", type=Path, default=Path(".cache/llama.cpp-build/bin"), help="folder with llama-perplexity and llama-bench (`make tools`)")
    b.add_argument("--windows", type=int, default=48, help="chunks of --n-ctx tokens (llama-perplexity --chunks)")
    b.add_argument("--n-ctx", type=int, default=512)
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--kld-top-k", type=int, default=0, help="reference tokens kept per position for KLD; 0 = whole vocabulary (exact, as llama-perplexity)")
    b.add_argument("--prefill-tokens", type=int, default=512, help="llama-bench -p")
    b.add_argument("--decode-tokens", type=int, default=128, help="llama-bench -n")
    b.add_argument("--eval-text", type=Path, default=None)
    b.add_argument("--rounds", type=int, default=3, help="alternating harness/tool speed rounds (medians compared)")
    b.add_argument("--llama-flash-attn", choices=("off", "on"), default=EvalSettings.llama_flash_attn,
                   help="flash attention for the harness and (-fa) for llama.cpp's tools alike")
    return p


def bench_config(a) -> RunConfig:
    if a.eval_text is not None and not a.eval_text.is_file():
        raise UserError(f"file '{a.eval_text}' does not exist")
    settings = EvalSettings(n_ctx=a.n_ctx, max_windows=a.windows or None, kld_top_k=a.kld_top_k, window_choice="first",
                            prefill_tokens=a.prefill_tokens, decode_tokens=a.decode_tokens,
                            threads=a.threads or default_threads(), llama_flash_attn=a.llama_flash_attn)
    return RunConfig(model=a.model, out=a.out, variants=("gguf-f16", "gguf-q4_k_m"), runtimes=("llama.cpp",),
                     eval=settings, eval_text=a.eval_text)


def config_from_args(a) -> RunConfig:
    variants = tuple(v.strip() for v in a.variants.split(",") if v.strip())
    bad = [v for v in variants if not is_variant(v)]
    if bad or not variants:
        raise UserError(f"unknown variant(s) {', '.join(bad) or '(none)'}; choose from {variants_help()}")
    for f in (a.calib, a.eval_text):
        if f is not None and not f.is_file():
            raise UserError(f"file '{f}' does not exist")
    if a.n_ctx < 16 or a.prefill_tokens < 1 or a.decode_tokens < 1 or a.speed_repeats < 1:
        raise UserError("--n-ctx must be >= 16 and token counts/repeats >= 1")
    runtimes = tuple(r.strip() for r in a.runtimes.split(",") if r.strip())
    bad = [r for r in runtimes if r not in ALL_RUNTIMES]
    if bad or not runtimes:
        raise UserError(f"unknown runtime(s) {', '.join(bad) or '(none)'}; choose from {', '.join(ALL_RUNTIMES)}")
    tasks = () if a.tasks.strip().lower() in ("", "none") else tuple(t.strip() for t in a.tasks.split(",") if t.strip())
    bad = [t for t in tasks if t not in SUPPORTED_TASKS]
    if bad:
        raise UserError(f"unknown task(s) {', '.join(bad)}; available offline: {', '.join(SUPPORTED_TASKS)}")
    try:
        batches = tuple(int(b) for b in a.serving_batches.split(",") if b.strip())
        decode_batches = tuple(sorted({1, *(int(b) for b in a.decode_batches.split(",") if b.strip())}))
    except ValueError:
        raise UserError("--serving-batches and --decode-batches take comma-separated integers") from None
    if a.synthetic_weights is not None:
        from harness.synthetic import SHAPES

        if a.synthetic_weights not in SHAPES:
            raise UserError(f"unknown synthetic shape '{a.synthetic_weights}' (choose from {', '.join(SHAPES)})")
        if a.model:
            raise UserError("--synthetic-weights and --model exclude each other")
        tasks = ()  # no quality metrics on random weights
    if a.tokenizer is not None and not (a.tokenizer / "tokenizer.json").is_file():
        raise UserError(f"'{a.tokenizer}' has no tokenizer.json")
    settings = EvalSettings(
        n_ctx=a.n_ctx, score_from=a.score_from, max_windows=a.windows or None, kld_top_k=0 if a.kld_exact else a.kld_top_k,
        prefill_tokens=a.prefill_tokens, decode_tokens=a.decode_tokens, speed_repeats=a.speed_repeats,
        threads=a.threads or default_threads(), sparse_top_k=a.sparse_top_k, serving_batches=batches,
        vllm_dtype=a.vllm_dtype, llama_flash_attn=a.llama_flash_attn, device=a.device, decode_batches=decode_batches,
        kernel_check_tokens=a.kernel_check_tokens, gpus=a.gpus, llama_split_mode=a.llama_split_mode,
        window_choice=a.window_choice, window_seed=a.window_seed,
    )
    if a.gpus and a.device == "cpu":
        raise UserError("--gpus needs --device cuda")
    if a.gpus < 0:
        raise UserError("--gpus must be 0 (every visible GPU) or more")
    task_settings = TaskSettings(tasks=tasks, limit=a.limit or None, num_fewshot=a.num_fewshot)
    awq = AwqRecipe(backend=a.awq_backend, calib_samples=a.awq_calib_samples, calib_seq_len=a.awq_calib_seq_len,
                    device=a.device)
    slug = f"synthetic-{a.synthetic_weights}" if a.synthetic_weights else _slug(a.model)
    out = a.out or Path("runs") / slug
    return RunConfig(model=a.model, out=out, variants=variants, runtimes=runtimes, eval=settings, tasks=task_settings, awq=awq,
                     calibration=a.calib, eval_text=a.eval_text, force=a.force, synthetic=a.synthetic_weights,
                     tokenizer_dir=a.tokenizer, notes=tuple(a.note), build_only=a.build_only,
                     trust_remote_code=a.trust_remote_code, allow_pickle=a.allow_pickle)


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
    write_report(results, target, verdict=verdict)
    print(f"wrote {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "compare":
            from harness.console import Console
            from harness.pipeline import run_compare

            code = run_compare(config_from_args(args), Console())
            if args.gate is None:
                return code
            from harness.gate.command import run_gate

            results = (args.out or config_from_args(args).out) / "results.json"
            if not results.is_file():
                raise UserError(f"no results to gate ({results} was not written)")
            return run_gate(results, None if str(args.gate) == "default" else args.gate)
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
        if args.command == "bench":
            from harness.bench import run_bench
            from harness.console import Console

            return run_bench(bench_config(args), args.tools, Console(), rounds=args.rounds)
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
