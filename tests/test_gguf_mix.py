"""The mix's allocation (budget respected, monotone in the budget, bits where the sensitivity is) and the
tensor-type file llama-quantize is given."""
import re

import pytest

from quantizers.gguf_mix import (LADDER_32, LADDER_256, Group, Tensor, allocate, bits, predicted_bytes,
                                 type_file_lines)


def _groups():
    gs = [Group("token_embd", (Tensor("token_embd.weight", 576, 576 * 4096),))]
    for b in range(4):
        gs.append(Group(f"blk{b}-attn", (Tensor(f"blk.{b}.attn_q.weight", 576, 576 * 576),
                                         Tensor(f"blk.{b}.attn_k.weight", 576, 576 * 192))))
        gs.append(Group(f"blk{b}-ffn", (Tensor(f"blk.{b}.ffn_up.weight", 576, 576 * 1536),
                                        Tensor(f"blk.{b}.ffn_down.weight", 1536, 576 * 1536))))
    return gs


SENS = {"token_embd": 0.02, "blk0-attn": 0.5, "blk0-ffn": 0.01, "blk1-attn": 0.002, "blk1-ffn": 0.003,
        "blk2-attn": 0.001, "blk2-ffn": 0.2, "blk3-attn": 0.004, "blk3-ffn": 0.002}


def _loss(groups, level):
    return sum(SENS[g.name] * 4.0 ** (-(g.bits(level[g.name]) - g.bits(0)) / g.n) for g in groups)


def test_ladders_follow_the_row_length():
    g = _groups()[2]  # blk0-ffn: up has 576-value rows (32-blocks), down 1536 (256-blocks)
    assert g.types(0) == {"blk.0.ffn_up.weight": "q4_0", "blk.0.ffn_down.weight": "q2_k"}
    assert g.types(99) == {"blk.0.ffn_up.weight": "q8_0", "blk.0.ffn_down.weight": "q8_0"}
    assert bits("q4_0") == 4.5 and bits("q2_k") == 2.625 and bits("q8_0") == 8.5
    assert LADDER_256[-1] == LADDER_32[-1] == "q8_0"


def test_budget_respected_and_monotone():
    groups = _groups()
    low = sum(g.bits(0) for g in groups)
    high = sum(g.bits(g.levels - 1) for g in groups)
    prev_level, prev_loss = None, None
    for frac in [0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.0]:
        budget = low + frac * (high - low)
        level = allocate(groups, SENS, budget)
        spent = sum(g.bits(level[g.name]) for g in groups)
        assert spent <= budget + 1e-6
        loss = _loss(groups, level)
        if prev_level is not None:  # a larger budget keeps every upgrade and loses no more
            assert all(level[k] >= prev_level[k] for k in level)
            assert loss <= prev_loss + 1e-15
        prev_level, prev_loss = level, loss
    assert all(level[g.name] == g.levels - 1 for g in groups)  # the whole budget: everything Q8_0
    with pytest.raises(Exception, match="below the smallest mix"):
        allocate(groups, SENS, low - 1)


def test_bits_go_where_the_sensitivity_is():
    groups = _groups()
    low = sum(g.bits(0) for g in groups)
    level = allocate(groups, SENS, low + 0.15 * (sum(g.bits(g.levels - 1) for g in groups) - low))
    assert level["blk0-attn"] > level["blk2-attn"] and level["blk2-ffn"] > level["blk1-ffn"]


def test_tensor_type_file_names_every_tensor_exactly():
    groups = _groups()
    level = {g.name: 0 for g in groups} | {"blk0-attn": 4}
    lines = type_file_lines(groups, level)
    assert len(lines) == sum(len(g.tensors) for g in groups)
    assert r"^blk\.0\.attn_q\.weight$=q8_0" in lines and r"^blk\.0\.ffn_down\.weight$=q2_k" in lines
    for line in lines:
        pattern, ty = line.split("=")
        assert " " not in line and ty in bits.__globals__["TYPE_SIZE"]
        hits = [t.name for g in groups for t in g.tensors if re.search(pattern, t.name)]
        assert len(hits) == 1  # llama-quantize applies it to that tensor alone
    assert predicted_bytes(groups, level, 1000) > 1000


def test_mix_comparison_is_paired_and_signed():
    import numpy as np

    from harness import metrics as M
    from harness.evidence import CellEvidence
    from harness.mix_compare import comparisons

    rng = np.random.default_rng(0)
    base = rng.gamma(2.0, 0.02, size=(12, 50))  # per-token KLD of a stock variant
    hard = rng.gamma(2.0, 1.0, size=(12, 1))  # windows differ a lot in difficulty, for both alike

    def cell(v, kld, nll):
        return CellEvidence(v, "llama.cpp", "ok", window_nll=nll, kld_tokens=kld, kld_window=kld.mean(1))

    ref = cell("fp16", np.zeros((12, 50)), np.full(12, 3.0))
    ref.runtime = "transformers"
    stock = cell("gguf-q4_k_m-imatrix", base * hard, np.full(12, 3.05))
    mix = cell("gguf-mix@gguf-q4_k_m", 0.8 * base * hard, np.full(12, 3.04))
    d = M.change(M.KLD_MEAN, (mix, ref), (stock, ref))  # what comparisons() reports as the difference
    assert d.value < 0 and d.ci_high < 0  # paired: the windows' difficulty cancels
    ev = {("fp16", "transformers"): ref, (stock.variant, "llama.cpp"): stock, (mix.variant, "llama.cpp"): mix}
    (c,) = comparisons(ev, None, {mix.variant: 100e6, stock.variant: 105e6})
    assert c["against"] == "gguf-q4_k_m-imatrix" and abs(c["kld_mean"]["ratio"] - 0.8) < 1e-9
    assert c["ppl_increase_pct"]["difference"][0] < 0
    assert c["kld_mean"]["difference"] == [d.value, d.ci_low, d.ci_high]


def test_a_group_without_a_measurement_refuses_the_mix(tmp_path):
    """A failed probe must not leave its group at the lowest type: the mix is refused (exit 2), naming the group."""
    import json
    from types import SimpleNamespace

    from core.errors import UserError
    from quantizers.gguf_mix import MixQuantizer

    groups = _groups()
    low = sum(g.bits(0) for g in groups)
    partial = {k: v for k, v in SENS.items() if k != "blk2-ffn"}
    with pytest.raises(UserError, match="blk2-ffn has no sensitivity measurement"):
        allocate(groups, partial, 2 * low)
    doc = {"groups": [{"group": k, "kld_increase": [v, v, v]} for k, v in partial.items()]
           + [{"group": "blk2-ffn", "error": "evaluation failed: llama.cpp crashed"}]}
    f = tmp_path / "sensitivity.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"tensor group blk2-ffn has no sensitivity measurement \(evaluation failed"):
        MixQuantizer("gguf-mix-4.9")._sensitivity(SimpleNamespace(sensitivity=f))
