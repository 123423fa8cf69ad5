"""Speed of one runtime: prefill and decode at batch 1 (median of repeats after a warm-up), decode at
larger batches, and serving sweeps for runtimes that batch requests themselves (vLLM)."""
from __future__ import annotations

import statistics

from evaluators.progress import progress
from evaluators.windows import Windows


def measure_speed(rt, prompt: list[int], spec, win: Windows) -> dict:
    """Prefill of the prompt, then decode steps; median of `speed_repeats` runs after one warm-up.

    protocol "llama-bench" matches llama-bench's pp/tg tests: prefill of the prompt from an empty
    context; tg = n single-token decodes from an empty context (the first token's pass included, as
    tg128 has no prompt), in a context of n cells where the runtime sizes contexts; mean of the runs."""
    n_new = spec.decode_tokens
    bench = spec.speed_protocol == "llama-bench"
    # warm-up: on a GPU one whole run (clocks, allocator and kernel caches settle; the first of five
    # runs of the H100 run at 16 warm-up tokens was half as fast as the last), on a CPU a short one
    on_gpu = spec.device != "cpu"
    rt.generate(prompt, n_new if on_gpu else min(n_new, 16))
    pre, dec = [], []
    for r in range(spec.speed_repeats):
        if bench:
            pre.append(len(prompt) / rt.generate(prompt, 0).prefill_s)
            g = rt.generate(prompt[:1], n_new - 1)
            dec.append(n_new / (g.prefill_s + g.decode_s))
        else:
            g = rt.generate(prompt, n_new)
            pre.append(len(prompt) / g.prefill_s)
            dec.append(g.n_decode / g.decode_s)
        progress(f"speed run {r + 1}/{spec.speed_repeats}")
    center = statistics.fmean if bench else statistics.median
    out = {
        "protocol": "llama-bench (pp: empty context; tg: from one token; mean)" if bench else
                    "prompt then decode; median",
        "prefill_tokens": len(prompt),
        "decode_tokens": n_new,
        "prefill_tok_s_runs": pre,
        "decode_tok_s_runs": dec,
        "prefill_tok_s": center(pre),
        "decode_tok_s": center(dec),
        # time to first token of the prompt at batch 1 (prefill + first token's logits)
        "ttft_s_runs": [len(prompt) / p for p in pre],
        "ttft_s": len(prompt) / center(pre),
    }
    batches = [int(b) for b in spec.decode_batches or [] if int(b) > 1]
    if batches and hasattr(rt, "generate_batch"):
        out["decode_batched"] = measure_batched_decode(rt, win, batches, n_new, spec.speed_repeats,
                                                       warmup_new=n_new if on_gpu else min(n_new, 8))
    return out


def measure_batched_decode(rt, win: Windows, batches: list[int], n_new: int, repeats: int, warmup_new: int,
                           n_in: int = 128) -> dict:
    """Decode tok/s (all sequences together) with b different 128-token prompts decoded at once."""
    flat = win.ids.reshape(-1)
    out = {}
    for b in batches:
        prompts = [[int(t) for t in flat[(i * n_in) % (len(flat) - n_in):][:n_in]] for i in range(b)]
        rt.generate_batch(prompts, warmup_new)  # warm-up (see measure_speed)
        runs = []
        for _ in range(repeats):
            g = rt.generate_batch(prompts, n_new)
            runs.append(b * g.n_decode / g.decode_s)
        out[str(b)] = {"tok_s": statistics.median(runs), "runs": runs, "prompt_tokens": n_in, "new_tokens": n_new}
        progress(f"decode at batch {b}: {out[str(b)]['tok_s']:.1f} tok/s")
    return out


def measure_serving(rt, win: Windows, plan) -> list[dict]:
    """Batched serving (vLLM): output tok/s, TTFT and inter-token latency at each batch size."""
    n_in, n_out = plan.input_tokens, plan.output_tokens
    flat = win.ids.reshape(-1)
    rows = []
    rt.throughput([[int(t) for t in flat[:n_in]]], 8)  # warm-up
    for b in plan.batches:
        prompts = [[int(t) for t in flat[(i * n_in) % (len(flat) - n_in):][:n_in]] for i in range(int(b))]
        rows.append(rt.throughput(prompts, n_out))
        progress(f"serving batch {b}: {rows[-1]['output_tok_s']:.1f} output tok/s")
    return rows
