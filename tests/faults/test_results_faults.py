"""Faults inside the numbers: padded top-k lists, a BROKEN fp16 reference for task rules, a plot that
cannot be drawn. Each is checked where it happens (no full run needed)."""
import numpy as np

from evaluators.kld import SparseLogprobs, TopK, kld_sparse
from tests.gate_fixtures import make_results


def test_padded_top_k_entries_never_make_kld_nan():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 50))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    order = np.argsort(-logp, axis=-1)[:, :5]
    ids, lp = order.astype(np.int64), np.take_along_axis(logp, order, -1)
    ids[:, 3:], lp[:, 3:] = -1, -np.inf  # what vLLM returns when it has fewer than k log-probs
    var = SparseLogprobs(lp[:, 0], ids, lp)
    whole = TopK(None, logp.astype(np.float32))
    top = TopK(np.argsort(-logp, -1)[:, :8].astype(np.int32), np.sort(logp, -1)[:, ::-1][:, :8].astype(np.float32))
    for ref in (whole, top):
        k = kld_sparse(ref, var)
        assert np.isfinite(k).all() and (k < 1e-6).all(), k  # same distribution: ~0, never NaN
    shifted = SparseLogprobs(lp[:, 0] - 0.3, ids, np.where(ids >= 0, lp - 0.3, -np.inf))
    assert np.isfinite(kld_sparse(whole, shifted)).all()


def _task_rules(results):
    from harness.gate.policy import load_policy
    from harness.gate.rules import Gate

    return [d for d in Gate(results, load_policy(None)).run()
            if d.variant == "gguf-q4_k_m" and d.runtime == "llama.cpp" and d.rule.startswith("max_flip_rate")]


def test_task_rules_never_take_a_broken_fp16_as_reference():
    r = make_results({"gguf-q4_k_m": {"ppl_shift": 0.01, "kld": 0.01}, "fp16": {"broken": True}})
    rules = _task_rules(r)  # fp16 × llama.cpp exists but is BROKEN: fp16 × transformers is the reference
    assert rules and all(d.against == "fp16 × transformers" for d in rules), rules
    r["flags"].append({"level": "broken", "variant": "fp16", "runtime": "transformers", "message": "BROKEN: NaN"})
    rules = _task_rules(r)  # no sound fp16 anywhere: the rules fail closed, saying why
    assert rules and all(d.decision == "fail" and "cannot be a reference" in d.reason for d in rules), rules


def test_a_plot_that_cannot_be_drawn_is_a_line_in_the_report(monkeypatch):
    from reports import html, plots

    def boom(*a, **k):
        raise ValueError("Data cannot be log-scaled because all values are <= 0")

    monkeypatch.setattr(plots, "window_ppl_distribution", boom)
    assert "could not be drawn" in html._img(plots.window_ppl_distribution, "per-window perplexity", {})


def test_kld_exact_that_cannot_fit_is_refused_in_one_line(tmp_path, monkeypatch):
    import json
    import shutil
    from types import SimpleNamespace

    import pytest

    from core.settings import EvalSettings
    from harness.config import RunConfig
    from core.errors import UserError
    from harness.cell_runs import check_reference_disk

    src = tmp_path / "model"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"vocab_size": 49152}))
    prepared = SimpleNamespace(info={"scored_tokens": 12240})
    cfg = RunConfig(model=None, out=tmp_path / "out", eval=EvalSettings(kld_top_k=0))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(total=10**10, used=0, free=2 * 10**9))
    with pytest.raises(UserError, match=r"2\.41 GB .* 2\.00 GB free") as e:
        check_reference_disk(tmp_path / "store" / "references" / "x", prepared, SimpleNamespace(path=src), cfg)
    assert "\n" not in str(e.value) and "197 MB per 1,000 tokens" in str(e.value)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(total=10**11, used=0, free=5 * 10**10))
    check_reference_disk(tmp_path / "store" / "references" / "x", prepared, SimpleNamespace(path=src), cfg)  # fits
