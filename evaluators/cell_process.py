"""One (variant, runtime) evaluation cell, run in its own subprocess:

    python -m evaluators.cell_process SPEC.json RESULT.json

SPEC.json is a core.cellspec.CellSpec, written by harness/cell_plan.py.

A crash or out-of-memory here is a failed cell for the harness, never a failed run.
Measures: perplexity per window, KL divergence / top-1 agreement against the reference's top-k
(or writes that reference), a short greedy generation, prefill/decode speed, peak RSS."""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path


def _preload_before_numpy(argv: list[str]) -> None:
    """Import the module the runtime asks to load before numpy (CellSpec.preload). llama.cpp asks for it: on the
    H100 host (numpy 2.5.2's wheel, whose bundled libgfortran/libquadmath load first, and llama.cpp built
    there with CUDA) loading a model crashed with SIGSEGV in the tokenizer's setup when numpy had been
    imported first, and ran when llama_cpp had."""
    try:
        module = json.loads(Path(argv[1]).read_text()).get("preload")
    except (IndexError, OSError, ValueError):
        return
    if module:
        try:
            __import__(module)
        except Exception:  # reported where the runtime loads, as a failed cell
            pass


if __name__ == "__main__":
    _preload_before_numpy(sys.argv)

import numpy as np  # noqa: E402

from core.cellspec import CellSpec
from evaluators.backends import make_runtime
from evaluators.backends.base import Unsupported
from evaluators.gpu_memory import GpuMemorySampler, busy_shares
from evaluators.contention import CpuWatch
from evaluators.decode_profile import profile_decode
from evaluators.speed import measure_serving, measure_speed
from evaluators.progress import progress
from evaluators.task_loglikelihood import score_task_requests
from evaluators.long_context import score_long
from evaluators.window_scores import score_windows
from evaluators.windows import Windows

DECODE_CHECK_TOKENS = 16  # tokens a compiled decode step is checked on against the eager forward
PROFILE_STEPS = 16  # decode steps profiled on GPU runs


def _cell_gpus() -> list[int]:
    """Physical indices (nvidia-smi's) of the GPUs this cell may use."""
    vis = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [int(x) for x in vis.split(",") if x.strip().isdigit()] or [0]


def _generate(rt, spec: CellSpec) -> dict:
    """Greedy continuations of exactly gen_tokens tokens for each of the spec's prompts."""
    t1 = time.perf_counter()
    tokens = rt.generate_many([list(p) for p in spec.gen_prompts], spec.gen_tokens)
    if len(tokens) != len(spec.gen_prompts) or any(len(t) != spec.gen_tokens for t in tokens):
        raise RuntimeError("the runtime's generate_many returned other counts than asked")
    return {"tokens": tokens, "seconds": time.perf_counter() - t1}


def _load_identity(spec: CellSpec) -> tuple:
    """What the loaded model depends on: a pair's measures that agree on it share one load."""
    return (spec.runtime, spec.artifact, spec.format, json.dumps(spec.options, sort_keys=True), spec.threads,
            spec.device, json.dumps(spec.parallel, sort_keys=True), spec.tokenizer_dir, spec.hf_config_dir, spec.seed)


def run(spec: CellSpec, fault: str | None = None, held=None) -> tuple[dict, object]:
    """The spec's measures; `held` is (runtime, identity, n_ctx, its notes at load) of a model this process already loaded, reused
    when the identity matches and the runtime can take the spec's context. Returns the result and what is held."""
    threads = spec.threads
    reuse = held is not None and held[1] == _load_identity(spec) and fault is None and (
        held[2] == spec.n_ctx or held[0].reopen(spec.n_ctx))
    rt = held[0] if reuse else make_runtime(spec)
    if reuse:
        rt.notes[:] = held[3]  # as loaded: a note one measure added is not another's
    if fault == "nan":
        _nan_logits(rt)
    device = spec.device
    rank = int(os.environ.get("RANK", "0"))  # tensor-parallel cells: one process per GPU, rank 0 reports
    if rank != 0:  # every rank computes the same (collectives need all); only rank 0 writes files
        spec = spec.with_(write_reference=False, reference_dir=None,
                          kernel_check_out=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"qc-rank{rank}-{os.getpid()}.npy"))
    vram = [GpuMemorySampler(i).start() for i in _cell_gpus()] if device != "cpu" and rank == 0 else []
    spans: dict[str, list[float]] = {}  # measure -> [start, end] (perf_counter): GPU-busy shares
    t0 = time.perf_counter()
    if not reuse:
        if held is not None:
            held[0].close()
        rt.load(Path(spec.artifact), spec.format, threads, spec.n_ctx)
    spans["load"] = [t0, time.perf_counter()]
    loaded_notes = list(rt.notes)
    result: dict = {"load_s": time.perf_counter() - t0, "threads": threads, "device": device,
                    "role": spec.role, "model_reused": reuse}
    if spec.kernel_check_ids and rt.full_logits:
        progress("kernel check logits")
        out = Path(spec.kernel_check_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, np.asarray(rt.logits(np.asarray(spec.kernel_check_ids)), dtype=np.float32))
        result["kernel_check_file"] = str(out)
    if spec.kind == "tasks":
        progress("task requests")
        t1 = time.perf_counter()
        result["loglikelihoods"] = score_task_requests(rt, spec)
        result["tasks_seconds"] = time.perf_counter() - t1
        spans["tasks"] = [t1, time.perf_counter()]
    elif spec.kind == "long":
        progress("long windows")
        t1 = time.perf_counter()
        result["long"] = score_long(rt, spec)
        spans["long"] = [t1, time.perf_counter()]
    elif spec.kind == "instruct":
        progress(f"instruction following: {len(spec.gen_prompts)} prompts x {spec.gen_tokens} tokens")
        t1 = time.perf_counter()
        result["instruct"] = _generate(rt, spec)
        spans["instruct"] = [t1, time.perf_counter()]
    else:
        win = Windows.load(Path(spec.windows))
        probe = spec.tokenizer_probe
        if probe:
            own = rt.tokenize(probe["text"])
            if own is not None:
                ref = probe["ids"]
                same = own == ref
                first_diff = None if same else next(
                    (i for i, (a, b) in enumerate(zip(own, ref)) if a != b), min(len(own), len(ref)))
                result["tokenizer_check"] = {"identical": same, "first_difference": first_diff,
                                             "n_runtime": len(own), "n_source": len(ref)}
        if spec.score:
            progress("scoring windows")
            t1 = time.perf_counter()
            result.update(score_windows(rt, win, spec))
            spans["windows"] = [t1, time.perf_counter()]
        if spec.gen_prompts:
            progress(f"generation: {len(spec.gen_prompts)} prompts x {spec.gen_tokens} tokens")
            t1 = time.perf_counter()
            result["generation"] = _generate(rt, spec)
            spans["generation"] = [t1, time.perf_counter()]
        progress("sanity generation")
        g = rt.generate(spec.sanity_prompt_ids, spec.sanity_new_tokens)
        result["sanity_tokens"] = g.tokens
        check = rt.check_decode(spec.sanity_prompt_ids, DECODE_CHECK_TOKENS)  # a compiled step vs the eager forward
        if check is not None:
            result["decode_check"] = check
        if spec.speed:
            prompt = [int(t) for t in win.ids.reshape(-1)[: spec.prefill_tokens]]
            spans["speed"] = [time.perf_counter(), 0.0]
            with CpuWatch() as watch:
                result["speed"] = measure_speed(rt, prompt, spec, win)
            result["speed"]["contention"] = watch.result
            spans["speed"][1] = time.perf_counter()
            if spec.profile_decode:  # GPU torch runtimes: kernels per token, by kind
                result["decode_profile"] = profile_decode(rt, prompt, PROFILE_STEPS)
            if check is not None and len(spec.decode_batches or []) > 0:
                # again after the larger batches' steps were made: the batch-1 step must still decode right
                result["decode_check_after_batches"] = rt.check_decode(spec.sanity_prompt_ids, DECODE_CHECK_TOKENS)
        if rt.serving is not None:
            result["serving"] = measure_serving(rt, win, rt.serving)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    spans["all"] = [t0, time.perf_counter()]
    if vram:
        result["gpu_busy"] = busy_shares(vram, spans)
        per_gpu = [v.stop() for v in vram]
        result["peak_vram_bytes"] = None if None in per_gpu else sum(per_gpu)
        if len(per_gpu) > 1:
            result["peak_vram_bytes_per_gpu"] = per_gpu
    if spec.parallel:
        result["parallel"] = spec.parallel
    if spec.kind == "quality":
        result["weight_bytes"] = rt.weight_bytes()
    if rt.compile_seconds() is not None:
        result["compile_seconds"] = rt.compile_seconds()
    result["versions"] = rt.versions()
    result["compute_dtype"] = rt.compute_dtype()
    result["notes"] = list(rt.notes)
    result["ok"] = True
    # a runtime the fault battery altered (NaN logits) serves no other measure
    return result, (rt, _load_identity(spec), spec.n_ctx, loaded_notes) if fault is None else None


def _write(out_path: Path, result: dict) -> None:
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out_path)


def _injected_fault(spec: CellSpec) -> str | None:
    """The fault battery's hook (tests/faults): QC_FAULT_CELL="variant|runtime|kill" makes that cell die
    as the kernel's out-of-memory killer would end it; "raise" makes it crash with an exception; "nan" makes
    its runtime return NaN logits (returned: run() applies it once the runtime exists). A fourth field names
    the cell's kind (quality by default: tasks, long, instruct)."""
    want = os.environ.get("QC_FAULT_CELL", "").split("|")
    if len(want) == 3:
        want.append("quality")
    if len(want) == 4 and want[:2] == [spec.variant, spec.runtime] and spec.kind == want[3]:
        if want[2] == "kill":
            os.kill(os.getpid(), 9)
        if want[2] == "nan":
            return "nan"
        raise MemoryError("injected fault: cannot allocate memory")
    return None


def _nan_logits(rt) -> None:
    """Make the runtime's logits NaN from the second position on (a model whose weights overflowed)."""
    real = rt.logits

    def logits(ids, keep_from=0):
        out = np.array(real(ids, keep_from=keep_from), dtype=np.float32)
        out[1:] = np.nan
        return out

    rt.logits = logits


def main(argv: list[str]) -> int:
    """SPEC.json RESULT.json, or --group SPEC RESULT SPEC RESULT ...: a pair's measures in turn, one model load."""
    args = argv[2:] if argv[1] == "--group" else argv[1:3]
    pairs = [(Path(args[i]), Path(args[i + 1])) for i in range(0, len(args), 2)]
    held, failed = None, 0
    for spec_path, out_path in pairs:
        t0 = time.perf_counter()
        spec = CellSpec.load(spec_path)
        if os.environ.get("QC_TEST_GPU_CELLS_ON_CPU") == "1" and spec.device != "cpu":
            # test switch: a cluster whose workers advertise GPUs they lack plans and places GPU cells, run here
            spec = spec.with_(device="cpu")
        try:
            result, held = run(spec, _injected_fault(spec), held)
        except Unsupported as e:
            result = {"ok": False, "unsupported": str(e)}
        except Exception:  # this measure failed (its traceback goes to the log); the pair's next one still runs
            if len(pairs) == 1:
                raise
            import traceback

            traceback.print_exc()
            print(f"cell {spec.kind} of {spec.variant} × {spec.runtime} failed (above)", file=sys.stderr, flush=True)
            failed += 1
            held = None
            continue
        result["cell_seconds"] = time.perf_counter() - t0
        # Results first, teardown after: some engines (vLLM) may abort while shutting down.
        if int(os.environ.get("RANK", "0")) == 0:
            _write(out_path, result)
    sys.stdout.flush()
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
