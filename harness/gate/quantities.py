"""The quantities the gate bounds, each as per-unit arrays (windows or documents) and a summary that
is vectorized over bootstrap resamples; the same definitions serve the comparison against fp16 and the
comparison against a baseline run (where the change of the summary is bounded)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from evaluators.stats import percentile_of_rows
from harness.gate.evidence import CellEvidence


class NotMeasured(Exception):
    """A quantity a rule needs is missing; the rule fails closed with this reason."""


@dataclass(frozen=True)
class Quantity:
    name: str
    unit: str  # "windows" or "documents"
    summary: Callable[[np.ndarray], np.ndarray]  # [B, n, ...] -> [B]
    higher_is_worse: bool = True


def _ppl_pct(d):
    return 100.0 * (np.exp(d.mean(axis=1)) - 1.0)


def _mean(x):
    return x.mean(axis=1)


def _pct_points(x):
    return 100.0 * x.mean(axis=1)


def _p99(x):
    return percentile_of_rows(x, 99.0)


PPL = Quantity("PPL increase vs fp16 (%)", "windows", _ppl_pct)
KLD_MEAN = Quantity("mean KLD vs fp16 (nats)", "windows", _mean)
KLD_P99 = Quantity("KLD p99 vs fp16 (nats)", "windows", _p99)
TOP1 = Quantity("top-1 agreement with fp16", "windows", _mean, higher_is_worse=False)
ACC_DROP = Quantity("accuracy drop vs fp16 (points)", "documents", _pct_points)
FLIPS = Quantity("flip rate vs fp16", "documents", _mean)


def _need(x, what: str, cell: CellEvidence):
    if x is None:
        raise NotMeasured(f"{what} of {cell.variant} × {cell.runtime} was not measured")
    return x


def window_units(q: Quantity, cell: CellEvidence, ref: CellEvidence) -> np.ndarray:
    """Per-window values of a window quantity for `cell`, paired with the reference's windows."""
    if q is PPL:
        mine = _need(cell.window_nll, "per-window perplexity", cell)
        theirs = _need(ref.window_nll, "per-window perplexity", ref)
        if len(mine) != len(theirs):
            raise NotMeasured(f"{cell.variant} × {cell.runtime} scored {len(mine)} windows, fp16 {len(theirs)}")
        return mine - theirs
    if q is KLD_MEAN:
        return _need(cell.kld_window, "KL divergence", cell)
    if q is KLD_P99:
        return _need(cell.kld_tokens, "per-token KL divergence", cell)
    if q is TOP1:
        return _need(cell.top1_window, "top-1 agreement", cell)
    raise ValueError(q.name)


def task_keys(cell: CellEvidence, selector: str) -> list[tuple[str, str]]:
    """(task, metric) pairs a per-task limit key selects: "*", "piqa" or "piqa:acc_norm"."""
    if cell.task_problem:
        raise NotMeasured(f"downstream tasks of {cell.variant} × {cell.runtime}: {cell.task_problem}")
    keys = []
    for task, per_doc in sorted(cell.tasks.items()):
        for metric in (m for m in per_doc if m != "doc_id"):
            if selector in ("*", task, f"{task}:{metric}"):
                keys.append((task, metric))
    if not keys:
        raise NotMeasured(f"no per-document task outcomes for '{selector}' on {cell.variant} × {cell.runtime}")
    return keys


def doc_units(q: Quantity, cell: CellEvidence, ref: CellEvidence, task: str, metric: str) -> np.ndarray:
    mine = cell.tasks.get(task)
    theirs = ref.tasks.get(task)
    if not mine or metric not in mine:
        raise NotMeasured(f"{task}:{metric} of {cell.variant} × {cell.runtime} was not measured")
    if not theirs or metric not in theirs:
        raise NotMeasured(f"{task}:{metric} of the fp16 reference {ref.variant} × {ref.runtime} was not measured")
    if mine["doc_id"] != theirs["doc_id"]:
        raise NotMeasured(f"{task}: documents differ from the fp16 reference's")
    a, b = np.asarray(mine[metric], dtype=np.float64), np.asarray(theirs[metric], dtype=np.float64)
    return (b - a) if q is ACC_DROP else (a != b).astype(np.float64)
