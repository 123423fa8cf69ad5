"""Long windows with planted facts (harness/long_probes.py, harness/long_metrics.py, harness/long_doc.py).

The conversion trap: a tiny Llama whose config carries llama3-type RoPE scaling must score the same at its late
positions as gguf-f16 and fp16, and a GGUF converted from the same weights with the scaling dropped from its
config (a RoPE setting lost in conversion; this module registers it as the variant gguf-f16-lost-rope, made by
llama.cpp's own converter) must be flagged BROKEN by the long-window check."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.registry import register_quantizer
from quantizers.gguf import GgufF16Quantizer

ROOT = Path(__file__).resolve().parent.parent
LOST = "gguf-f16-lost-rope"


@register_quantizer(variants=(LOST,), order=90, summary="test only: gguf-f16 converted without the source's RoPE scaling")
class LostRopeQuantizer(GgufF16Quantizer):
    """llama.cpp's converter run on the fp16 checkpoint with rope_scaling removed from its config.json."""

    variant = LOST

    def recipe(self, ctx) -> dict:
        return {"outtype": "f16", "rope_scaling": "dropped"}

    def build(self, ctx, dest: Path):
        fp16_dir, m = ctx.upstream["fp16"]
        src = fp16_dir / m.artifact
        bare = dest / "source-without-rope-scaling"
        bare.mkdir()
        for f in src.iterdir():
            if f.name != "config.json":
                os.symlink(f.resolve(), bare / f.name)
        cfg = json.loads((src / "config.json").read_text())
        cfg.pop("rope_scaling", None)
        if isinstance(cfg.get("rope_parameters"), dict):
            cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": cfg["rope_parameters"].get("rope_theta", 10000.0)}
        (bare / "config.json").write_text(json.dumps(cfg))
        ctx.upstream = {"fp16": (dest, type(m)(**{**m.as_dict(), "artifact": bare.name}))}
        manifest = super().build(ctx, dest)
        shutil.rmtree(bare)
        manifest.variant = LOST
        return manifest


# -- the probes ------------------------------------------------------------------------------------------

def test_probes_plant_each_fact_and_its_answer(tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    from harness.long_probes import build_probes, depths, lengths_for

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    text = (ROOT / "data" / "wikitext-2-raw-v1" / "wiki.test.raw").read_text()
    p = build_probes(enc, text, 2048, 2, 5, 3, None)
    assert [len(w) for w in p.windows] == [256, 256, 512, 512, 1024, 1024, 2048, 2048] == \
        [L for L in lengths_for(2048) for _ in range(2)]
    assert sorted({n.depth_pct for n in p.needles if n.length >= 1024}) == depths(5) == [10, 30, 50, 70, 90]
    for n in p.needles:
        w = p.windows[n.window]
        assert f"magic number for {n.key} is {n.value}." in tok.decode(w[n.position: n.position + 20])
        assert tok.decode(w[n.answer_start: n.answer_start + n.answer_len]).strip() == n.value
        assert n.position < n.answer_start
    for w in range(len(p.windows)):  # deeper facts sit later, all of them before the questions
        mine = sorted((n for n in p.needles if n.window == w), key=lambda n: n.depth_pct)
        assert [n.position for n in mine] == sorted(n.position for n in mine)
        assert max(n.position for n in mine) < min(n.answer_start for n in mine)
    again = build_probes(enc, text, 2048, 2, 5, 3, None)
    assert again.sha256() == p.sha256()
    assert build_probes(enc, text, 2048, 2, 5, 4, None).sha256() != p.sha256()
    # a short window keeps the facts that leave it half of haystack
    small = build_probes(enc, text, 128, 1, 5, 0, None)
    assert len(small.windows) == 1 and 0 < len(small.needles) < 5


# -- the quantities --------------------------------------------------------------------------------------

def _cell(v, kld_scale_late=1.0, hits=None, seed=0, long_ctx=1024, per=2):
    from harness.evidence import CellEvidence

    rng = np.random.default_rng(seed)
    lengths = [L for L in (128, 256, 512, 1024) for _ in range(per)]
    kld = []
    for L in lengths:
        x = rng.exponential(0.02, L - 1)
        x[long_ctx // 2:] *= kld_scale_late
        kld.append(x)
    nll = [3.0 + rng.normal(0, 0.5, L - 1) for L in lengths]
    ev = CellEvidence(v, "rt", "ok", long_ctx=long_ctx, long_nll=nll, long_kld=kld if v != "fp16" else None)
    if hits is not None:
        ev.needle_hits = np.asarray(hits, dtype=np.float64)
        ev.needle_window = np.repeat(np.arange(len(lengths)), 5)
    return ev


def test_bucket_quantities_and_the_rise():
    from harness import long_metrics as LM
    from harness import metrics as M

    assert LM.bucket_names(8192) == ["0_512", "512_2k", "2k_4k", "4k_8k"]
    flat, bad = _cell("a", per=6), _cell("b", kld_scale_late=10.0, per=6)  # six windows a length: intervals
    e_flat, e_bad = M.estimate(LM.KLD_RISE, flat, None), M.estimate(LM.KLD_RISE, bad, None)
    assert e_flat.ci_low < 0 < e_flat.ci_high
    assert e_bad.ci_low > 0.1 and e_bad.value == pytest.approx(0.18, rel=0.15)
    late = M.estimate(LM.late_kld_mean(1024), bad, None)
    assert late.value == pytest.approx(0.2, rel=0.15) and late.ci_low < late.value < late.ci_high
    # ΔPPL by position is paired with fp16's blocks: a variant with fp16's NLL shows exactly 0
    ref = _cell("fp16", per=6)
    same = _cell("c", per=6)
    same.long_nll = [x.copy() for x in ref.long_nll]
    d = M.estimate(LM.ppl_increase_at(3, 1024), same, ref)
    assert d.value == d.ci_low == d.ci_high == 0.0
    # windows are the units: with two windows a length no interval, the value alone (a figure, never a rule)
    two = _cell("b", kld_scale_late=10.0)
    with pytest.raises(LM.TooFewWindows):
        M.estimate(LM.KLD_RISE, two, None)
    assert LM.point(LM.KLD_RISE, two, None) == pytest.approx(0.18, rel=0.2)


def test_retrieval_drop_is_paired_by_window():
    from harness import long_metrics as LM
    from harness import metrics as M

    ref = _cell("fp16", hits=[1] * 40)
    a = _cell("a", hits=[1, 1, 1, 0, 1] * 8)  # one fact lost in every window
    e = M.estimate(LM.NEEDLE_DROP, a, ref)
    assert e.value == e.ci_low == e.ci_high == pytest.approx(20.0)
    assert M.estimate(LM.NEEDLE_ACCURACY, a, None).value == pytest.approx(0.8)
    # the same ten losses in two windows: windows are the units, and the interval says how little two windows tell
    b = _cell("b", hits=[1] * 30 + [0] * 10)
    e = M.estimate(LM.NEEDLE_DROP, b, ref)
    assert e.value == pytest.approx(25.0) and e.ci_low == 0.0 and e.ci_high >= 50.0
    with pytest.raises(M.NotMeasured):
        M.estimate(LM.NEEDLE_DROP, _cell("b", hits=[1] * 35), ref)


def test_the_long_window_check_flags_a_late_rise_only():
    from harness import long_doc

    def section(cells):
        return {"needles": [], "cells": [{"variant": c.variant, "runtime": "rt", "status": "ok", "n_ctx": 1024,
                                          "nll_per_position": [x.tolist() for x in c.long_nll],
                                          "kld_per_position": None if c.long_kld is None else [x.tolist() for x in c.long_kld],
                                          "needle_hits": None} for c in cells]}

    for per in (2, 6):  # window by window (too few for an interval), then on the interval resampled by window
        cells = [_cell("fp16", per=per), _cell("ok", per=per), _cell("noisy", kld_scale_late=1.5, per=per),
                 _cell("lost", kld_scale_late=10.0, per=per)]
        docs = [{"variant": c.variant, "runtime": "rt", "status": "ok"} for c in cells]
        flags = long_doc.flags(docs, section(cells))
        assert [(f.variant, f.level) for f in flags] == [("lost", "broken")], per
        assert "RoPE" in flags[0].message and ("resampled by window" in flags[0].message) == (per == 6)


def test_non_finite_long_windows_are_broken_loudly():
    """A long cell whose logits were NaN is BROKEN, in the flags that the terminal, results.json and the report show
    (it once failed quietly: the run exited 0 with every long cell of transformers 'failed')."""
    from harness import long_doc
    from harness.variant_flags import Flag

    class _Cell:
        variant, runtime, ok = "awq-int4", "transformers", True
        result = {"long": {"nonfinite_positions": 1000, "n_ctx": 1024, "seconds": 1.0, "tokens": 1026,
                           "nll_per_position": [[0.0] * 1023, [0.0] * 1], "kld_per_position": None,
                           "needle_hits": [], "needle_answers": []}}

        def doc(self):
            return {"variant": self.variant, "runtime": self.runtime, "status": "ok"}

    class _Prepared:
        probes = type("P", (), {"info": {}, "needles": []})()
        n_ctx, sha256 = 1024, "x"

    sec = long_doc.section(_Prepared(), [_Cell()])
    assert sec["cells"][0]["status"] == "failed"
    flags = long_doc.flags([], sec)
    assert flags == [Flag("broken", "awq-int4", "transformers", flags[0].message)]
    assert "1,000 of 1,024 positions" in flags[0].message


# -- end to end: the RoPE-scaling trap -------------------------------------------------------------------

ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 2048}


@pytest.mark.slow
def test_a_gguf_that_lost_its_rope_scaling_is_flagged_broken(tokenizer_dir, tmp_path):
    from tests.tiny_models import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny-llama-rope", "llama", tokenizer_dir, max_positions=16384,
                            rope_scaling=ROPE, sharpen=(5.0, 16.0))
    out = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(tmp_path / "store"))
    p = subprocess.run([sys.executable, "-m", "harness.cli", "compare", "--model", str(model), "--out", str(out),
                        "--plugins", "tests.test_long_context", "--variants", f"fp16,gguf-f16,{LOST}",
                        "--tasks", "none", "--windows", "4", "--n-ctx", "64", "--gen-prompts", "0", "--instructions", "0",
                        "--prefill-tokens", "16", "--decode-tokens", "4", "--speed-repeats", "1",
                        "--long-ctx", "1024", "--long-windows", "5", "--needles", "2"],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-3000:]  # a BROKEN variant: the run exits 1
    assert f"BROKEN: {LOST} × llama.cpp" in p.stdout and "RoPE" in p.stdout
    r = json.loads((out / "results.json").read_text())
    rows = {(x["variant"], x["metric"]): x for x in r["rows"] if x["runtime"] in ("llama.cpp", "transformers")}
    status = {(c["variant"], c["runtime"]): c["status"] for c in r["cells"]}
    assert status[(LOST, "llama.cpp")] == "broken"
    assert status[("gguf-f16", "llama.cpp")] == "ok"
    assert not [f for f in r["flags"] if f["variant"] == "gguf-f16" and f["level"] == "broken"]
    # gguf-f16 (the converter carried the scaling as rope_freqs) scores fp16's numbers at late positions
    late = rows[("gguf-f16", "long_kld_mean_512_1k")]
    assert late["value"] < 1e-3
    inc = rows[("gguf-f16", "long_ppl_increase_pct_512_1k")]
    assert inc["ci_low"] <= 0.05 and inc["ci_high"] >= -0.05
    lost = rows[(LOST, "long_kld_mean_512_1k")]["value"]
    assert lost > 0.1 and lost > 10 * rows[(LOST, "long_kld_mean_0_64")]["value"]
    assert rows[(LOST, "long_kld_rise")]["ci_low"] > 0.05


# -- the gate's long-window rules ------------------------------------------------------------------------

def test_the_gate_bounds_late_kld_the_rise_and_retrieval_and_fails_closed_without_long_windows():
    from harness.gate.policy import parse_policy
    from harness.gate.rules import Gate
    from tests.gate_fixtures import make_results

    r = make_results({"gguf-q8_0": {"kld": 0.01}, "gguf-q4_k_m": {"kld": 0.05}, "gguf-q2_k": {"kld": 0.05}})
    cells = {"fp16": _cell("fp16", hits=[1] * 120, per=6), "gguf-q8_0": _cell("gguf-q8_0", hits=[1] * 120, seed=1, per=6),
             "gguf-q4_k_m": _cell("gguf-q4_k_m", kld_scale_late=10.0, hits=[1, 1, 1, 0, 1] * 24, seed=2, per=6)}
    runtime = {c["variant"]: c["runtime"] for c in r["cells"]}
    r["long_context"] = {"needles": [{"window": int(w)} for w in np.repeat(np.arange(24), 5)], "cells": [
        {"variant": v, "runtime": runtime[v], "status": "ok", "n_ctx": c.long_ctx,
         "nll_per_position": [x.tolist() for x in c.long_nll],
         "kld_per_position": None if c.long_kld is None else [x.tolist() for x in c.long_kld],
         "needle_hits": c.needle_hits.tolist()} for v, c in cells.items()]}
    policy = parse_policy('policy_version = 1\n[variants."*"]\nmax_long_kld_mean_late = 0.10\nmax_long_kld_rise = 0.05\n'
                          "max_needle_accuracy_drop = 10.0\n", "test")
    by = {}
    for d in Gate(r, policy).run():
        by[(d.variant, d.rule)] = d
    assert {k[1] for k in by} == {"max_long_kld_mean_late", "max_long_kld_rise", "max_needle_accuracy_drop"}
    assert all(by[("gguf-q8_0", k)].decision == "pass" for k in ("max_long_kld_mean_late", "max_long_kld_rise",
                                                                  "max_needle_accuracy_drop"))
    assert by[("gguf-q4_k_m", "max_long_kld_mean_late")].decision == "fail"
    assert by[("gguf-q4_k_m", "max_long_kld_rise")].decision == "fail"
    assert by[("gguf-q4_k_m", "max_needle_accuracy_drop")].decision == "fail"
    assert "512–1k" in by[("gguf-q4_k_m", "max_long_kld_mean_late")].metric
    assert by[("gguf-q4_k_m", "max_long_kld_mean_late")].interval_coverage is None  # not validated: marked †
    # a run without long windows fails every long rule closed, with the reason
    for k in ("max_long_kld_mean_late", "max_long_kld_rise", "max_needle_accuracy_drop"):
        d = by[("gguf-q2_k", k)]
        assert d.decision == "fail" and "not measured" in d.reason and "long windows" in d.reason


def test_long_rules_fail_closed_with_too_few_windows_for_an_interval():
    from harness.gate.policy import parse_policy
    from harness.gate.rules import Gate
    from tests.gate_fixtures import make_results

    r = make_results({"gguf-q8_0": {"kld": 0.01}})
    cells = {"fp16": _cell("fp16"), "gguf-q8_0": _cell("gguf-q8_0", seed=1)}  # two windows a length
    runtime = {c["variant"]: c["runtime"] for c in r["cells"]}
    r["long_context"] = {"needles": [], "cells": [
        {"variant": v, "runtime": runtime[v], "status": "ok", "n_ctx": c.long_ctx,
         "nll_per_position": [x.tolist() for x in c.long_nll],
         "kld_per_position": None if c.long_kld is None else [x.tolist() for x in c.long_kld],
         "needle_hits": None} for v, c in cells.items()]}
    policy = parse_policy('policy_version = 1\n[variants."*"]\nmax_long_kld_mean_late = 0.10\nmax_long_kld_rise = 0.05\n',
                          "test")
    by = {(d.variant, d.rule): d for d in Gate(r, policy).run()}
    for k in ("max_long_kld_mean_late", "max_long_kld_rise"):
        d = by[("gguf-q8_0", k)]
        assert d.decision == "fail" and "an interval needs 5" in d.reason, d.reason

