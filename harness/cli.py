"""`quantcompare` command line: compare (and more to come)."""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from harness.config import ALL_VARIANTS, AWQ_BACKENDS, AwqRecipe, EvalSettings, RunConfig, default_threads
from evaluators.backends import ALL_RUNTIMES, DEFAULT_RUNTIMES
from harness.errors import UserError
from harness.tasks import SUPPORTED_TASKS, TaskSettings


def _slug(model: str | None) -> str:
    if not model:
        return "smollm2-135m-instruct"
    name = Path(model.rstrip("/")).name if os.path.sep in model or os.path.exists(model) else model
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "model"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantcompare", description="Quantize one FP16 LLM into GGUF Q4_K_M and AWQ INT4 and measure every variant fairly.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="quantize, evaluate, write results.json/csv and report.html")
    c.add_argument("--model", default=None, help="local HF model folder or hub id (default: embedded SmolLM2-135M-Instruct)")
    c.add_argument("--out", type=Path, default=None, help="run folder (default runs/<model-slug>/)")
    c.add_argument("--variants", default=",".join(ALL_VARIANTS), help=f"comma-separated subset of {','.join(ALL_VARIANTS)}")
    c.add_argument("--windows", type=int, default=EvalSettings.max_windows, help="number of evaluation windows (0 = all)")
    c.add_argument("--n-ctx", type=int, default=512, help="window length in tokens")
    c.add_argument("--score-from", type=float, default=0.5, help="score tokens from this fraction of each window on")
    c.add_argument("--threads", type=int, default=None, help="CPU threads for every runtime (default: physical cores)")
    c.add_argument("--kld-top-k", type=int, default=256, help="reference top-k kept per position for KL divergence")
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
    c.add_argument("--serving-batches", default="1,8,32", help="vLLM throughput sweep batch sizes")
    c.add_argument("--awq-backend", choices=AWQ_BACKENDS, default="autoawq")
    c.add_argument("--awq-calib-samples", type=int, default=AwqRecipe.calib_samples)
    c.add_argument("--awq-calib-seq-len", type=int, default=AwqRecipe.calib_seq_len)
    c.add_argument("--calib", type=Path, default=None, help="calibration text (.txt or .jsonl with a 'text' field)")
    c.add_argument("--eval-text", type=Path, default=None, help="evaluation text (default: shipped WikiText-2 raw test)")
    c.add_argument("--force", action="store_true", help="rebuild artifacts and re-run every cell")
    b = sub.add_parser("bench", help="the harness vs llama-perplexity and llama-bench on the same GGUF files; writes bench.json")
    b.add_argument("--model", default=None, help="local HF model folder or hub id (default: embedded SmolLM2-135M-Instruct)")
    b.add_argument("--out", type=Path, default=Path("runs/bench"))
    b.add_argument("--tools", type=Path, default=Path(".cache/llama.cpp-build/bin"), help="folder with llama-perplexity and llama-bench (`make tools`)")
    b.add_argument("--windows", type=int, default=48, help="chunks of --n-ctx tokens (llama-perplexity --chunks)")
    b.add_argument("--n-ctx", type=int, default=512)
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--kld-top-k", type=int, default=256)
    b.add_argument("--prefill-tokens", type=int, default=512, help="llama-bench -p")
    b.add_argument("--decode-tokens", type=int, default=128, help="llama-bench -n")
    b.add_argument("--eval-text", type=Path, default=None)
    return p


def bench_config(a) -> RunConfig:
    if a.eval_text is not None and not a.eval_text.is_file():
        raise UserError(f"file '{a.eval_text}' does not exist")
    settings = EvalSettings(n_ctx=a.n_ctx, max_windows=a.windows or None, kld_top_k=a.kld_top_k,
                            prefill_tokens=a.prefill_tokens, decode_tokens=a.decode_tokens,
                            threads=a.threads or default_threads())
    return RunConfig(model=a.model, out=a.out, variants=("gguf-f16", "gguf-q4_k_m"), runtimes=("llama.cpp",),
                     eval=settings, eval_text=a.eval_text)


def config_from_args(a) -> RunConfig:
    variants = tuple(v.strip() for v in a.variants.split(",") if v.strip())
    bad = [v for v in variants if v not in ALL_VARIANTS]
    if bad or not variants:
        raise UserError(f"unknown variant(s) {', '.join(bad) or '(none)'}; choose from {', '.join(ALL_VARIANTS)}")
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
    except ValueError:
        raise UserError("--serving-batches takes comma-separated integers") from None
    settings = EvalSettings(
        n_ctx=a.n_ctx, score_from=a.score_from, max_windows=a.windows or None, kld_top_k=a.kld_top_k,
        prefill_tokens=a.prefill_tokens, decode_tokens=a.decode_tokens, speed_repeats=a.speed_repeats,
        threads=a.threads or default_threads(), sparse_top_k=a.sparse_top_k, serving_batches=batches,
        vllm_dtype=a.vllm_dtype,
    )
    task_settings = TaskSettings(tasks=tasks, limit=a.limit or None, num_fewshot=a.num_fewshot)
    awq = AwqRecipe(backend=a.awq_backend, calib_samples=a.awq_calib_samples, calib_seq_len=a.awq_calib_seq_len)
    out = a.out or Path("runs") / _slug(a.model)
    return RunConfig(model=a.model, out=out, variants=variants, runtimes=runtimes, eval=settings, tasks=task_settings, awq=awq,
                     calibration=a.calib, eval_text=a.eval_text, force=a.force)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "compare":
            from harness.console import Console
            from harness.pipeline import run_compare

            return run_compare(config_from_args(args), Console())
        if args.command == "bench":
            from harness.bench import run_bench
            from harness.console import Console

            return run_bench(bench_config(args), args.tools, Console())
    except UserError as e:
        print(f"quantcompare: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("quantcompare: interrupted; earlier results are untouched (files are replaced only when complete)", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno == 28:
            print(f"quantcompare: error: disk full: {e.filename or ''}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
