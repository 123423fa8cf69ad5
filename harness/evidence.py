"""What a results.json holds about each cell, in arrays ready to resample: per-window, per-token and
per-document measurements, status and flags. The results document's rows, the report and the gate all
compute their numbers from these (harness/metrics.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import UserError
from harness.schema import READABLE_SCHEMAS


@dataclass
class CellEvidence:
    variant: str
    runtime: str
    status: str  # ok | failed | broken | unsupported
    problem: str | None = None  # why the cell cannot pass any rule (failed, BROKEN)
    window_nll: np.ndarray | None = None  # [windows]
    nll_tokens: np.ndarray | None = None  # [windows, scored tokens]
    kld_method: str | None = None  # how its KLD was taken (exact, top-k lower bound, sparse)
    kld_window: np.ndarray | None = None  # [windows] mean KLD per window
    kld_tokens: np.ndarray | None = None  # [windows, scored tokens]
    top1_window: np.ndarray | None = None  # [windows]
    size_bytes: float | None = None
    bits_per_weight: float | None = None
    decode: tuple[float, list[float]] | None = None  # median tok/s and the timed runs
    tasks: dict = field(default_factory=dict)  # task -> {"doc_id": [...], metric: [0/1 ...]}
    generation: list | None = None  # [prompts] harness.generation.Continuation, fp16's prompts in fp16's order
    gen_n_new: int = 0  # tokens asked per prompt
    task_problem: str | None = None
    long_ctx: int = 0  # the longest long window (harness/long_probes.py)
    long_nll: list | None = None  # [long windows] arrays: every position's NLL
    long_kld: list | None = None  # [long windows] arrays: every position's KLD vs fp16
    needle_hits: np.ndarray | None = None  # [facts] 1.0 retrieved, 0.0 not
    needle_window: np.ndarray | None = None  # [facts] the long window each fact is planted in
    long_problem: str | None = None
    if_strict: np.ndarray | None = None  # [instruction prompts] 1.0 every instruction followed as written
    if_loose: np.ndarray | None = None  # [instruction prompts] the same after IFEval's loose clean-ups
    if_followed: np.ndarray | None = None  # [instruction prompts] instructions followed (strict)
    if_count: np.ndarray | None = None  # [instruction prompts] instructions given
    if_problem: str | None = None


def load_results(path: Path, what: str = "results") -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{what} file '{path}' does not exist") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {what} '{path}': {e}") from None
    if not isinstance(doc, dict) or doc.get("tool") != "quantcompare" or "cells" not in doc or "rows" not in doc:
        raise UserError(f"'{path}' is not a quantcompare results.json")
    if doc.get("schema_version") not in READABLE_SCHEMAS:
        raise UserError(f"'{path}' has results schema {doc.get('schema_version')!r}; this gate reads {READABLE_SCHEMAS}")
    return doc


def clusters(results: dict) -> np.ndarray | None:
    """The cluster (article, or block of the text) of each scored window, where the run recorded it."""
    c = (results.get("windows") or {}).get("clusters")
    return None if c is None else np.asarray(c)


def reference(results: dict) -> tuple[str, str]:
    ref = results.get("run", {}).get("reference") or {"variant": "fp16", "runtime": "transformers"}
    return ref["variant"], ref["runtime"]


def usable_reference(cell: CellEvidence, tasks: bool = False) -> bool:
    """A cell other cells may be measured against: it ran, nothing flagged it BROKEN, and (for task rules)
    its task cell finished."""
    return cell.status == "ok" and cell.problem is None and not (tasks and cell.task_problem)


def _row(results: dict, v: str, rt: str, metric: str) -> float | None:
    for r in results["rows"]:
        if r["variant"] == v and r["runtime"] == rt and r["metric"] == metric:
            return r["value"]
    return None


def _arr(x, dtype=np.float64):
    return None if x is None else np.asarray(x, dtype=dtype)


def _tokens(per_token) -> np.ndarray | None:
    if not per_token:
        return None
    n = {len(w) for w in per_token}
    if len(n) != 1:  # windows score the same number of tokens; anything else is not ours to resample
        return None
    return np.asarray(per_token, dtype=np.float32)


def collect(results: dict) -> dict[tuple[str, str], CellEvidence]:
    """Every measured cell (dequantized references of kernel checks are not variants' results)."""
    broken: dict[tuple[str, str | None], str] = {}
    for f in results.get("flags", []):
        if f["level"] in ("broken", "error"):
            broken.setdefault((f["variant"], f["runtime"]), f["message"])
    out: dict[tuple[str, str], CellEvidence] = {}
    for c in results["cells"]:
        if c.get("role", "measured") != "measured":
            continue
        key = (c["variant"], c["runtime"])
        ev = CellEvidence(c["variant"], c["runtime"], c["status"])
        if c["status"] == "failed":
            ev.problem = f"cell failed: {c.get('error') or 'no reason recorded'}"
        elif key in broken or (c["variant"], None) in broken:
            ev.problem = f"flagged: {broken.get(key) or broken.get((c['variant'], None))}"
        if c["status"] in ("ok", "broken"):
            ev.window_nll = _arr(c.get("window_nll"))
            ev.nll_tokens = _tokens(c.get("nll_per_token"))
            ev.kld_method = c.get("kld_method")
            ev.kld_window = _arr(c.get("kld_per_window"))
            ev.kld_tokens = _tokens(c.get("kld_per_token"))
            ev.top1_window = _arr(c.get("top1_per_window"))
            ev.size_bytes = _row(results, *key, "size_bytes")
            ev.bits_per_weight = _row(results, *key, "bits_per_weight")
            if c.get("generation"):
                from harness.generation import Continuation

                g = c["generation"]
                ev.generation = [Continuation(tuple(t), bool(e), bool(b)) for t, e, b in
                                 zip(g["tokens"], g["ended"], g["blank"])]
                ev.gen_n_new = int((results.get("generation") or {}).get("n_new") or 0)
            sp = c.get("speed") or {}
            if sp.get("decode_tok_s") is not None:
                ev.decode = (float(sp["decode_tok_s"]), [float(x) for x in sp.get("decode_tok_s_runs") or [sp["decode_tok_s"]]])
        out[key] = ev
    for t in results.get("task_cells", []):
        ev = out.get((t["variant"], t["runtime"]))
        if ev is None:
            continue
        if t["status"] != "ok":
            ev.task_problem = f"task cell {t['status']}: {t.get('error') or ''}".strip()
            continue
        for task, d in (t.get("scores") or {}).items():
            if d.get("per_doc"):
                ev.tasks[task] = d["per_doc"]
    _collect_long(results, out)
    _collect_instruct(results, out)
    return out


def _collect_instruct(results: dict, out: dict) -> None:
    """Each cell's per-prompt instruction-following outcomes (harness/instruct_doc.py judged them)."""
    for d in (results.get("instruction_following") or {}).get("cells", []):
        ev = out.get((d["variant"], d["runtime"]))
        if ev is None:
            continue
        if d["status"] != "ok" or d.get("prompt_strict") is None:
            ev.if_problem = f"instruction-following cell {d['status']}: {d.get('error') or ''}".strip()
            continue
        ev.if_strict = np.asarray(d["prompt_strict"], dtype=np.float64)
        ev.if_loose = np.asarray(d["prompt_loose"], dtype=np.float64)
        ev.if_followed = np.asarray([sum(s) for s in d["strict"]], dtype=np.float64)
        ev.if_count = np.asarray([len(s) for s in d["strict"]], dtype=np.float64)


def _collect_long(results: dict, out: dict) -> None:
    section = results.get("long_context") or {}
    windows = np.asarray([n["window"] for n in section.get("needles") or []])
    for lc in section.get("cells", []):
        ev = out.get((lc["variant"], lc["runtime"]))
        if ev is None:
            continue
        if lc["status"] != "ok":
            ev.long_problem = f"long-window cell {lc['status']}: {lc.get('error') or ''}".strip()
            continue
        ev.long_ctx = int(lc["n_ctx"])
        ev.long_nll = [np.asarray(x, dtype=np.float64) for x in lc["nll_per_position"]]
        ev.long_kld = None if lc.get("kld_per_position") is None else [np.asarray(x, dtype=np.float64)
                                                                       for x in lc["kld_per_position"]]
        if lc.get("needle_hits") is not None and len(lc["needle_hits"]) == len(windows):
            ev.needle_hits = np.asarray(lc["needle_hits"], dtype=np.float64)
            ev.needle_window = windows


def task_metrics(per_doc: dict) -> list[str]:
    return [k for k in per_doc if k != "doc_id"]
