"""lm-eval's log-likelihood requests, scored by a runtime: the cell's task mode."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evaluators.progress import progress


def score_task_requests(rt, spec) -> list[list]:
    """lm-eval loglikelihood requests, already tokenized by the harness: [context ids, continuation ids]
    -> [sum of log p(continuation), whether greedy decoding reproduces it]. Inputs are cut from the
    left to n_ctx tokens, as lm-eval's HF model does. Scored in order of length, 32 at a time (little
    padding, full batches), with logits only at each request's continuation positions."""
    reqs = json.loads(Path(spec.task_requests).read_text())
    n_ctx = spec.n_ctx
    seqs, spans = [], []
    for ctx, cont in reqs:
        whole = (ctx + cont)[-(n_ctx + 1):]
        seqs.append(whole)
        spans.append(len(cont))
    out: list[list | None] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    chunk = 32
    for start in range(0, len(order), chunk):
        idx = order[start:start + chunk]
        batch = [seqs[i] for i in idx]
        for i, sp in zip(idx, rt.prompt_logprobs(batch, 1, last=[spans[i] for i in idx])):
            n_cont = spans[i]
            lp = sp.target_logp[-n_cont:]
            greedy = bool((sp.ids[-n_cont:, 0] == np.asarray(seqs[i][-n_cont:])).all())
            out[i] = [float(lp.sum()), greedy]
        progress(f"task request {min(start + chunk, len(seqs))}/{len(seqs)}")
    return out
