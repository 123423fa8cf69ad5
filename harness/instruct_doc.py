"""results.json's instruction_following section: the prompts and their instructions, and per cell its answers
(cut at the end of sequence, decoded with the source tokenizer) judged by harness/instructions.py."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from core.names import REFERENCE
from harness.generation import cut, empty, has_loop
from harness.instructions import judge
from harness.shared_inputs import decode


def section(prompts: list, info: dict, cells, n_new: int, source_path: Path) -> dict | None:
    """None when the run asked for no instruction following."""
    if not prompts:
        return None
    eos = info.get("eos_ids", [])
    docs = []
    for c in cells:
        d = c.doc()
        if c.ok:
            answers, judged, unsound = [], [], []
            for p, toks in zip(prompts, c.result["instruct"]["tokens"]):
                cont = cut(toks, eos)
                text = decode(source_path, cont.tokens)
                answers.append({"text": text, "n_tokens": len(cont.tokens), "ended": cont.ended})
                judged.append(judge(text, p.instructions, p.text, info.get("checker", "home")))
                # a loop or an empty answer is damage, never an instruction followed (the generation measure's
                # definitions: harness/generation.py)
                unsound.append(has_loop(cont) or empty(cont) or not text.strip())
            d.update({"seconds": round(c.result["instruct"]["seconds"], 2), "answers": answers,
                      "strict": [[ok and not u for ok in j["strict"]] for j, u in zip(judged, unsound)],
                      "loose": [[ok and not u for ok in j["loose"]] for j, u in zip(judged, unsound)],
                      "prompt_strict": [j["prompt_strict"] and not u for j, u in zip(judged, unsound)],
                      "prompt_loose": [j["prompt_loose"] and not u for j, u in zip(judged, unsound)],
                      "degenerate": unsound,
                      # followed as the checks read it, but by a looping or empty answer: shown as damage
                      "followed_but_degenerate": [bool(j["prompt_loose"] and u) for j, u in zip(judged, unsound)]})
            d["by_instruction"] = by_instruction(prompts, d["strict"])
        docs.append(d)
    return {"n_new": n_new, "eos_ids": eos, "chat_template": info.get("chat_template"), "seed": info.get("seed"),
            "set": info.get("set", "home"), "set_name": info.get("set_name"), "checker": info.get("checker", "home"),
            "left_out": info.get("left_out"),
            "greedy": True, "reference": {"variant": REFERENCE[0], "runtime": REFERENCE[1]},
            "prompts": [{"id": p.id, "text": p.text, "instructions": p.instructions, "n_tokens": len(p.ids)}
                        for p in prompts],
            "cells": docs}


def by_instruction(prompts: list, strict: list[list[bool]]) -> dict[str, list[int]]:
    """Instruction id -> [followed, given] (strict), for the report's breakdown."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p, s in zip(prompts, strict):
        for ins, ok in zip(p.instructions, s):
            out[ins["id"]][0] += int(ok)
            out[ins["id"]][1] += 1
    return dict(sorted(out.items()))

