"""Downstream accuracy through lm-eval, with lm-eval's own task definitions and metrics.

lm-eval runs in the harness process; models run in their cells. The bridge is lm-eval's `LM`
interface, used twice:
1. a recording LM collects every loglikelihood request of the selected tasks (same documents,
   few-shot count and limit for every variant) and tokenizes it once with the source tokenizer,
   as lm-eval's HF model does (trailing context spaces move to the continuation; whole-string
   encoding, then split);
2. each (variant, runtime) cell scores those token ids;
3. a replaying LM hands the scores back to lm-eval, which computes the metrics and their stderr.
The shipped task files replace the hub datasets the task YAMLs name (see data/README.md)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from core.errors import UserError
from core.settings import TaskSettings
from core.paths import DATA_DIR

TASK_DATA = DATA_DIR / "tasks"
LOCAL_TASKS: dict[str, Callable[[Path], dict]] = {}  # task -> its lm-eval overrides for the shipped files


def local_task(name: str):
    """Register a task that runs offline: the function returns lm-eval's overrides pointing at shipped files
    (prompts and metrics stay lm-eval's). A new task is one such function (here or in a --plugins module)."""
    def deco(fn: Callable[[Path], dict]) -> Callable[[Path], dict]:
        LOCAL_TASKS[name] = fn
        return fn
    return deco


@local_task("lambada_openai")
def _lambada(work: Path) -> dict:
    return {"task": "lambada_openai", "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {"test": str(TASK_DATA / "lambada_openai" / "test.jsonl")}}}


@local_task("piqa")
def _piqa(work: Path) -> dict:
    items = (TASK_DATA / "piqa" / "valid.jsonl").read_text().splitlines()
    labels = (TASK_DATA / "piqa" / "valid-labels.lst").read_text().split()
    if len(items) != len(labels):
        raise UserError("data/tasks/piqa: items and labels are not aligned")
    work.mkdir(parents=True, exist_ok=True)
    merged = work / "piqa-validation.jsonl"
    rows = []
    for line, lab in zip(items, labels):
        d = json.loads(line)
        rows.append(json.dumps({"goal": d["goal"], "sol1": d["sol1"], "sol2": d["sol2"], "label": int(lab)}))
    merged.write_text("\n".join(rows) + "\n")
    # PIQA's train split is not shipped: few-shot examples (if asked for) come from validation, as lm-eval
    # does for tasks without a train split.
    return {"task": "piqa", "dataset_path": "json", "dataset_name": None, "training_split": None,
            "dataset_kwargs": {"data_files": {"validation": str(merged)}}}


def _local_overrides(task: str, work: Path) -> dict:
    """Point lm-eval's task definition at the shipped files; prompts and metrics stay lm-eval's."""
    if task not in LOCAL_TASKS:
        raise UserError(f"task '{task}' is not available offline; choose from {', '.join(LOCAL_TASKS)}")
    return LOCAL_TASKS[task](work)


SUPPORTED_TASKS = tuple(LOCAL_TASKS)


def _lm_classes():
    from lm_eval.api.model import LM

    class RecordingLM(LM):
        """Collects loglikelihood requests; answers with placeholders."""

        def __init__(self) -> None:
            super().__init__()
            self.pairs: list[tuple[str, str]] = []

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            for r in requests:
                self.pairs.append(tuple(r.args))
            return [(0.0, False)] * len(requests)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise UserError("tasks scored by rolling loglikelihood are not supported yet")

        def generate_until(self, requests, disable_tqdm: bool = False):
            raise UserError("generation tasks are not supported yet")

    class ReplayLM(RecordingLM):
        """Answers with the scores a cell computed for the same requests."""

        def __init__(self, scores: dict[tuple[str, str], tuple[float, bool]]) -> None:
            super().__init__()
            self.scores = scores

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return [tuple(self.scores[tuple(r.args)]) for r in requests]

    return RecordingLM, ReplayLM


@lru_cache(maxsize=1)
def _task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager()


def _evaluate(lm, settings: TaskSettings, work: Path, log_samples: bool = False) -> dict:
    """lm-eval's simple_evaluate on the shipped data; its chatter goes to work/lm-eval.log."""
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "lm-eval.log", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return _evaluate_quietly(lm, settings, work, log_samples)


def _evaluate_quietly(lm, settings: TaskSettings, work: Path, log_samples: bool) -> dict:
    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml

    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    tm = _task_manager()
    configs = []
    for t in settings.tasks:
        entry = tm.task_index.get(t)
        if entry is None or entry.yaml_path is None:
            raise UserError(f"lm-eval {lm_eval.__version__} has no task '{t}'")
        cfg = dict(load_yaml(entry.yaml_path, resolve_func=True))  # lm-eval's own definition ...
        cfg.update(_local_overrides(t, work))  # ... reading the shipped files
        configs.append(cfg)
    return lm_eval.simple_evaluate(
        model=lm, tasks=configs, task_manager=tm, num_fewshot=settings.num_fewshot, limit=settings.limit,
        bootstrap_iters=1000, random_seed=settings.seed, numpy_random_seed=settings.seed,
        torch_random_seed=settings.seed, fewshot_random_seed=settings.seed, log_samples=log_samples,
    )


def encode_pair(tok, context: str, continuation: str, prefix_id: int | None) -> tuple[list[int], list[int]]:
    """lm-eval's HF tokenization of one request (causal models, no special tokens)."""
    if context == "":
        cont = tok(continuation, add_special_tokens=False)["input_ids"]
        return [prefix_id], cont
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    return list(ctx), list(whole[len(ctx):])


@dataclass
class TaskRequests:
    settings: TaskSettings
    pairs: list[tuple[str, str]]
    path: Path  # json: [[context ids, continuation ids], ...]
    sha256: str


def _requests_key(settings: TaskSettings, tokenizer_dir: Path) -> str:
    """Requests depend on the task settings, lm-eval's version, the task files and the tokenizer."""
    from importlib import metadata

    h = hashlib.sha256(json.dumps(settings.as_dict(), sort_keys=True).encode())
    try:
        h.update(metadata.version("lm-eval").encode())
    except metadata.PackageNotFoundError:
        raise UserError("lm-eval is not installed in this environment; run `make setup`") from None
    for f in sorted(TASK_DATA.rglob("*")) + sorted(Path(tokenizer_dir).glob("tokenizer*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def build_requests(settings: TaskSettings, tokenizer_dir: Path, work: Path) -> TaskRequests:
    """Run lm-eval once with the recording LM and tokenize its requests with the source tokenizer
    (cached in work/tasks by everything the requests depend on)."""
    key = _requests_key(settings, tokenizer_dir)
    cache = work / "tasks" / f"requests-{key[:16]}.cache.json"
    try:
        doc = json.loads(cache.read_text())
        path = Path(doc["path"])
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == doc["blob_sha256"]:
            return TaskRequests(settings, [tuple(p) for p in doc["pairs"]], path, doc["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        import lm_eval  # noqa: F401
    except ImportError as e:
        raise UserError(f"lm-eval is not installed in this environment ({e}); run `make setup`, or pass "
                        "--task-requests with requests exported where it is") from None
    from transformers import AutoTokenizer

    RecordingLM, _ = _lm_classes()
    rec = RecordingLM()
    _evaluate(rec, settings, work / "tasks")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    pairs = list(dict.fromkeys(rec.pairs))
    encoded = [encode_pair(tok, c, x, prefix) for c, x in pairs]
    blob = json.dumps(encoded).encode()
    sha = hashlib.sha256(blob + json.dumps(settings.as_dict(), sort_keys=True).encode()).hexdigest()
    path = work / "tasks" / f"requests-{sha[:12]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"path": str(path), "blob_sha256": hashlib.sha256(blob).hexdigest(), "sha256": sha,
                               "pairs": pairs}))
    tmp.replace(cache)
    return TaskRequests(settings, pairs, path, sha)


def export_requests(req: TaskRequests, dest: Path) -> None:
    """One file with a run's task requests (settings, text pairs, token ids) for a host without lm-eval."""
    doc = {"settings": req.settings.as_dict(), "sha256": req.sha256, "pairs": req.pairs,
           "encoded": json.loads(req.path.read_bytes())}
    dest.write_text(json.dumps(doc))


def load_requests(settings: TaskSettings, src: Path, work: Path) -> TaskRequests:
    """The requests export_requests wrote, refused unless they were built with these task settings."""
    try:
        doc = json.loads(Path(src).read_text())
        stored, pairs, encoded, sha = doc["settings"], doc["pairs"], doc["encoded"], doc["sha256"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read the task requests '{src}': {e}") from None
    if stored != settings.as_dict():
        raise UserError(f"the task requests '{src}' were built for {stored}, not this run's {settings.as_dict()}")
    blob = json.dumps(encoded).encode()
    path = work / "tasks" / f"requests-{sha[:12]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return TaskRequests(settings, [tuple(p) for p in pairs], path, sha)


SCORES_FORMAT = "per-doc-v1+loglik"  # part of the scores' cache key: bump when the stored form changes
PER_DOC_METRICS = ("acc", "acc_norm")  # right/wrong per document: paired deltas and flips (harness/gate)


def score_tasks(req: TaskRequests, loglikelihoods: list[list], work: Path) -> dict:
    """Hand a cell's scores back to lm-eval; {task: {metrics: {name: {value, stderr}}, n, per_doc}};
    per_doc: {"doc_id": [...], "acc": [0/1, ...], ...} in document order, for paired comparisons.
    Cached by (requests, scores): a re-run with cached cells does not run lm-eval again."""
    if len(loglikelihoods) != len(req.pairs):
        raise ValueError(f"{len(loglikelihoods)} scores for {len(req.pairs)} requests")
    key = hashlib.sha256((SCORES_FORMAT + req.sha256 + json.dumps(loglikelihoods)).encode()).hexdigest()
    cache = work / "tasks" / f"scores-{key[:16]}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    out = _score_tasks(req, loglikelihoods, work)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(cache)
    return out


def _score_tasks(req: TaskRequests, loglikelihoods: list[list], work: Path) -> dict:
    _, ReplayLM = _lm_classes()
    scores = {p: (float(ll), bool(g)) for p, (ll, g) in zip(req.pairs, loglikelihoods)}
    res = _evaluate(ReplayLM(scores), req.settings, work / "tasks", log_samples=True)
    out = {}
    for task, metrics in res["results"].items():
        m = {}
        for key, value in metrics.items():
            if "," not in key or key.startswith("alias") or "_stderr" in key:
                continue
            name = key.split(",")[0]
            err = metrics.get(f"{name}_stderr,{key.split(',', 1)[1]}")
            m[name] = {"value": float(value), "stderr": float(err) if isinstance(err, (int, float)) else None}
        out[task] = {"metrics": m, "n": int(res.get("n-samples", {}).get(task, {}).get("effective", 0)),
                     "per_doc": _per_doc(res.get("samples", {}).get(task, []))}
    return out


def _per_doc(samples: list[dict]) -> dict:
    """Each document's right/wrong outcome per accuracy metric, ordered by document id."""
    samples = sorted(samples, key=lambda d: d["doc_id"])
    out: dict = {"doc_id": [int(d["doc_id"]) for d in samples]}
    for name in PER_DOC_METRICS:
        if samples and name in samples[0]:
            out[name] = [float(d[name]) for d in samples]
    if samples and "perplexity" in samples[0]:  # lm-eval's per-document value is the log-likelihood
        out["loglik"] = [float(d["perplexity"]) for d in samples]
    return out
