"""Instruction following: IFEval's checks on answers written here (each instruction followed and not), the loose
rule, the prompts' determinism, and the paired quantities and gate rule on per-prompt outcomes."""
from __future__ import annotations

import numpy as np
import pytest

from harness.instructions import CONFLICTS, INSTRUCTIONS, followed, judge
from harness.instruct_prompts import TASKS, build

CASES = [  # (instruction, kwargs, an answer that follows it, one that does not)
    ("punctuation:no_comma", {}, "Tea is good. It is warm.", "Tea, as you know, is good."),
    ("change_case:english_lowercase", {}, "tea is good.", "Tea is good."),
    ("change_case:english_capital", {}, "TEA IS GOOD.", "TEA is good."),
    ("change_case:capital_word_frequency", {"relation": "at least", "n": 2}, "TEA is VERY good", "TEA is good"),
    ("length_constraints:number_words", {"relation": "less than", "n": 5}, "Tea is good.", "Tea is very very good."),
    ("length_constraints:number_words", {"relation": "at least", "n": 3}, "Tea is good.", "Tea rocks."),
    ("length_constraints:number_sentences", {"relation": "less than", "n": 3}, "One. Two.", "One. Two! Three?"),
    ("length_constraints:number_paragraphs", {"n": 2}, "First part.\n***\nSecond part.", "First.\n***\n***\nSecond."),
    ("keywords:existence", {"keywords": ["water", "light"]}, "Water and light.", "Water only."),
    ("keywords:forbidden_words", {"words": ["the"]}, "Theatre is fun.", "The play is fun."),
    ("keywords:frequency", {"word": "good", "relation": "at least", "n": 2}, "good, Good", "good"),
    ("keywords:letter_frequency", {"letter": "z", "relation": "at least", "n": 2}, "zoo zebra", "zoo"),
    ("detectable_format:number_bullet_lists", {"n": 2}, "List:\n* one\n* two", "* one\n* two\n* three"),
    ("detectable_format:title", {}, "<<My day>>\nIt was fine.", "My day\nIt was fine."),
    ("detectable_format:number_highlighted_sections", {"n": 2}, "*one* and *two*", "*one* and two"),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "a: 1"),
    ("detectable_format:multiple_sections", {"n": 2}, "SECTION 1\na\nSECTION 2\nb", "SECTION 1\na"),
    ("startend:end_checker", {"phrase": "Any other questions?"}, "Done. Any other questions?",
     "Any other questions? Yes."),
    ("startend:quotation", {}, '"Tea is good."', "Tea is good."),
    ("detectable_content:postscript", {}, "Hello.\nP.S. Bye.", "Hello. Bye."),
    ("detectable_content:number_placeholders", {"n": 2}, "At [place] on [date].", "At [place]."),
    ("combination:two_responses", {}, "Tea.\n******\nCoffee.", "Tea.\n******\nTea."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Describe tea."}, "Describe tea. It is warm.", "Tea is warm."),
]


@pytest.mark.parametrize("iid,kw,good,bad", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_check_tells_followed_from_not(iid, kw, good, bad):
    assert followed(good, iid, kw)[0], good
    assert not followed(bad, iid, kw)[0], bad


def test_every_instruction_has_a_case():
    assert {c[0] for c in CASES} == set(INSTRUCTIONS)


def test_loose_forgives_a_preamble_and_markdown_but_strict_does_not():
    answer = "Sure, here it is:\ntea is warm and good."
    assert followed(answer, "change_case:english_lowercase", {}) == (False, True)
    bold = "**Tea** is good. It is warm"
    assert followed(bold, "startend:end_checker", {"phrase": "It is warm"}) == (True, True)
    assert followed("", "punctuation:no_comma", {}) == (False, False)  # an empty answer follows nothing
    j = judge("tea is good", [{"id": "change_case:english_lowercase", "kwargs": {}},
                              {"id": "keywords:existence", "kwargs": {"keywords": ["coffee"]}}])
    assert j["strict"] == [True, False] and not j["prompt_strict"] and not j["prompt_loose"]


def test_prompts_are_deterministic_cover_every_instruction_and_never_conflict():
    a, b = build(100, 0), build(100, 0)
    assert a == b and build(100, 1) != a
    used = {i["id"] for _, ins, _ in a for i in ins}
    assert used == set(INSTRUCTIONS)
    for task, ins, text in a:
        assert task in TASKS and text.startswith(task)
        ids = [i["id"] for i in ins]
        assert len(set(ids)) == len(ids)
        assert all(frozenset(p) not in CONFLICTS for p in [(x, y) for x in ids for y in ids if x < y])
        assert len(ids) == 1 or not any(x.startswith("combination:") for x in ids)
        for i in ins:
            assert INSTRUCTIONS[i["id"]].text(i["kwargs"]) in text


def test_quantities_pair_by_prompt_and_the_gate_rule_decides():
    from harness import instruct_metrics as IM
    from harness import metrics as M
    from harness.evidence import CellEvidence

    rng = np.random.default_rng(0)
    ref = CellEvidence("fp16", "transformers", "ok")
    ref.if_strict = (rng.random(200) < 0.6).astype(float)
    ref.if_loose = np.maximum(ref.if_strict, (rng.random(200) < 0.2).astype(float))
    ref.if_followed, ref.if_count = ref.if_strict + 1, np.full(200, 2.0)
    bad = CellEvidence("q", "llama.cpp", "ok")
    bad.if_strict = ref.if_strict * (rng.random(200) < 0.5)  # loses half of what fp16 followed, gains nothing
    bad.if_loose, bad.if_followed, bad.if_count = bad.if_strict, bad.if_strict + 1, np.full(200, 2.0)
    drop = M.estimate(IM.IF_STRICT_DROP, bad, ref)
    want = 100 * (ref.if_strict.mean() - bad.if_strict.mean())
    assert drop.value == pytest.approx(want) and drop.ci_low > 20
    same = M.estimate(IM.IF_STRICT_DROP, ref, ref)
    assert same.value == 0 and same.ci_low == 0 == same.ci_high  # paired: no noise against itself
    assert M.estimate(IM.IF_INST_STRICT, ref, None).value == pytest.approx(ref.if_followed.sum() / 400)
    none = CellEvidence("x", "llama.cpp", "ok")
    none.if_problem = "instruction-following cell failed: boom"
    with pytest.raises(M.NotMeasured, match="boom"):
        M.estimate(IM.IF_STRICT_DROP, none, ref)


def _with_instructions(r: dict, strict: dict[str, list[int]]) -> dict:
    """A results document with an instruction_following section: per variant, which of its prompts it followed."""
    runtime = {c["variant"]: c["runtime"] for c in r["cells"]}
    n = len(next(iter(strict.values())))
    prompts = [{"id": f"p{i}", "text": f"Task {i}. Do not use any commas in your response.",
                "instructions": [{"id": "punctuation:no_comma", "kwargs": {}}], "n_tokens": 10} for i in range(n)]
    r["instruction_following"] = {"n_new": 32, "seed": 0, "chat_template": True, "prompts": prompts, "cells": [
        {"variant": v, "runtime": runtime[v], "status": "ok", "strict": [[bool(x)] for x in s], "loose": [[bool(x)] for x in s],
         "prompt_strict": [bool(x) for x in s], "prompt_loose": [bool(x) for x in s],
         "answers": [{"text": "ok" if x else "no, sir", "n_tokens": 2, "ended": True} for x in s],
         "by_instruction": {"punctuation:no_comma": [sum(s), n]}} for v, s in strict.items()]}
    return r


def test_the_gate_bounds_the_drops_and_fails_closed_without_instruction_following():
    from harness.gate.policy import parse_policy
    from harness.gate.rules import Gate
    from tests.gate_fixtures import make_results

    r = make_results({"gguf-q8_0": {"kld": 0.01}, "gguf-q4_k_m": {"kld": 0.05}, "gguf-q2_k": {"kld": 0.05}})
    rng = np.random.default_rng(3)
    ref = (rng.random(300) < 0.7).astype(int)
    r = _with_instructions(r, {"fp16": ref.tolist(), "gguf-q8_0": ref.tolist(),
                               "gguf-q4_k_m": (ref * (rng.random(300) < 0.6)).tolist()})
    policy = parse_policy('policy_version = 1\n[variants."*"]\nmax_if_strict_drop_points = 10.0\n'
                          "max_if_loose_drop_points = 10.0\n", "test")
    by = {(d.variant, d.rule): d for d in Gate(r, policy).run()}
    assert by[("gguf-q8_0", "max_if_strict_drop_points")].decision == "pass"
    assert by[("gguf-q4_k_m", "max_if_strict_drop_points")].decision == "fail"
    assert by[("gguf-q4_k_m", "max_if_loose_drop_points")].decision == "fail"
    assert "paired bootstrap over 300 instruction prompts" in by[("gguf-q4_k_m", "max_if_strict_drop_points")].method
    d = by[("gguf-q2_k", "max_if_strict_drop_points")]
    assert d.decision == "fail" and "not measured" in d.reason


def test_rows_report_and_summary_show_instruction_following(tmp_path):
    from harness.evidence import collect
    from harness.results_doc import quality_rows
    from reports import instruct_view
    from tests.gate_fixtures import make_results

    r = make_results({"gguf-q4_k_m": {"kld": 0.05}})
    r = _with_instructions(r, {"fp16": [1, 1, 0, 1] * 10, "gguf-q4_k_m": [1, 0, 0, 1] * 10})
    rows = {(x.variant, x.metric): x for x in quality_rows(collect(r), None)}
    assert rows[("fp16", "if_prompt_strict")].value == pytest.approx(0.75)
    assert rows[("gguf-q4_k_m", "if_prompt_strict_drop")].value == pytest.approx(25.0)
    assert ("fp16", "if_prompt_strict_drop") not in rows  # fp16 against itself is no row
    r["rows"] = [x.as_dict() for x in rows.values()]
    page = instruct_view.section(r, lambda f: f.to_html())
    assert "Instruction following vs fp16" in page and "+25.0" in page and "punctuation:no_comma" in page
    assert "no, sir" in page  # the first prompt where q4_k_m and fp16 part, side by side
