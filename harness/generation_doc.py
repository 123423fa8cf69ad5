"""The generation part of results.json: the prompts, and for each cell its continuations cut at the end of
sequence, with the text the report's side-by-side viewer shows (the part shared with fp16's continuation, the
first differing token, the rest) and what degenerated (harness/generation.py defines all of it)."""
from __future__ import annotations

from pathlib import Path

from core.names import REFERENCE
from harness.generation import Continuation, cut, degenerate_kinds, first_divergence, survival
from harness.shared_inputs import decode

NOISE_FLOOR_MIN = 0.95  # gguf-f16 (fp16's weights) should stay identical to fp16 after n_new tokens on this share


def continuations(doc_gen: dict) -> list[Continuation]:
    """A cell document's continuations (as results.json keeps them)."""
    return [Continuation(tuple(t), bool(e), bool(b)) for t, e, b in zip(doc_gen["tokens"], doc_gen["ended"], doc_gen["blank"])]


def attach(cell_docs: list[dict], results_by_cell: dict, prompts: list, info: dict, n_new: int, source_path: Path) -> dict | None:
    """Put each cell's generation into its document and return results.json's `generation` section."""
    if not prompts:
        return None
    dec = lambda ids: decode(source_path, ids)  # noqa: E731
    eos = info.get("eos_ids", [])
    for d in cell_docs:
        gen = results_by_cell.get((d["variant"], d["runtime"]))
        if not gen:
            continue
        conts = [cut(t, eos) for t in gen["tokens"]]
        texts = [dec(c.tokens) for c in conts]
        d["generation"] = {"tokens": [list(c.tokens) for c in conts], "ended": [c.ended for c in conts],
                           "blank": [not t.strip() for t in texts], "text": texts, "seconds": round(gen["seconds"], 2)}
    ref_doc = next((d for d in cell_docs if (d["variant"], d["runtime"]) == REFERENCE and d.get("generation")), None)
    if ref_doc is not None:
        ref = continuations(ref_doc["generation"])
        for d in cell_docs:
            if not d.get("generation"):
                continue
            conts = continuations(d["generation"])
            pieces, div, kinds = [], [], []
            for c, r in zip(conts, ref):
                k = first_divergence(c, r, n_new)
                div.append(k)
                kinds.append(degenerate_kinds(c, r))
                pieces.append([dec(c.tokens[:k]), dec(c.tokens[k:k + 1]), dec(c.tokens[k + 1:])])
            # the report's survival curve: harness.generation's one definition, not recomputed by the page
            d["generation"].update({"first_divergence": div, "degenerate": kinds, "pieces": pieces,
                                    "survival": [float(x) for x in survival(div, n_new)]})
    return {"n_new": n_new, "eos_ids": eos, "chat_template": info.get("chat_template"),
            "reference": {"variant": REFERENCE[0], "runtime": REFERENCE[1]}, "greedy": True,
            "sources": {"chat": info.get("chat_source"), "text": info.get("text_source")},
            "prompts": [{"set": p.set, "source": p.source, "text": p.text, "n_tokens": len(p.ids)} for p in prompts]}


def noise_floor_note(cell_docs: list[dict], same_weights: tuple[str, ...], n_new: int) -> list[str]:
    """The report's statement when a variant with fp16's weights does not generate what fp16 does."""
    notes = []
    for d in cell_docs:
        g = d.get("generation") or {}
        if d["variant"] in same_weights and (d["variant"], d["runtime"]) != REFERENCE and g.get("first_divergence"):
            share = float(survival(g["first_divergence"], n_new)[n_new])
            if share < NOISE_FLOOR_MIN:
                notes.append(f"{d['variant']} × {d['runtime']} holds fp16's weights but generates fp16's {n_new} tokens on "
                             f"only {100 * share:.0f}% of prompts (expected at least {100 * NOISE_FLOOR_MIN:.0f}%): the "
                             "runtimes' arithmetic alone makes greedy paths part there, so read the other variants' "
                             "divergence against this floor")
    return notes
