"""Batched greedy generation gives each prompt the tokens it gets alone: transformers' left-padded batches and
llama.cpp's several sequences in one context, prompts of different lengths."""
from __future__ import annotations

import pytest

from core.cellspec import CellSpec

PROMPTS = [[1, 200, 300], [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [1, 4000], [1, 77, 88, 99, 111, 222, 333]]


def _alone(rt, n_new: int) -> list[list[int]]:
    return [list(rt.generate(p, n_new - 1).tokens[:n_new]) for p in PROMPTS]


def test_transformers_batches_match_one_by_one(tiny_llama):
    from evaluators.backends import make_runtime

    rt = make_runtime(CellSpec(runtime="transformers"))
    rt.load(tiny_llama, "hf-safetensors", 2, 128)
    rt.GEN_BATCH = 3  # two batches, one of them padded
    assert rt.generate_many(PROMPTS, 12) == _alone(rt, 12)


def test_llama_cpp_sequences_match_one_by_one(tiny_llama, tmp_path):
    pytest.importorskip("llama_cpp")
    import subprocess
    import sys

    from core.paths import LLAMA_CPP_SRC
    from evaluators.backends import make_runtime

    gguf = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(LLAMA_CPP_SRC / "convert_hf_to_gguf.py"), str(tiny_llama), "--outtype", "f16",
                    "--outfile", str(gguf)], check=True, capture_output=True, env={"PYTHONPATH": str(LLAMA_CPP_SRC / "gguf-py"),
                                                                                  "PATH": "/usr/bin:/bin"})
    rt = make_runtime(CellSpec(runtime="llama.cpp"))
    rt.load(gguf, "gguf", 2, 128)
    rt.GEN_SEQS = 3
    assert rt.generate_many(PROMPTS, 12) == _alone(rt, 12)


@pytest.mark.slow
def test_llama_cpp_continuations_do_not_depend_on_the_prompts_beside_them():
    """A prompt's greedy continuation is the same whichever prompts share its context, in any order: the same
    cell gives the same continuations run to run. The default model's embedded Q4_1 file, real chat questions."""
    pytest.importorskip("llama_cpp")
    import json
    import random

    from core.paths import DATA_DIR
    from evaluators.backends import make_runtime
    from harness.default_model import find_embedded_gguf

    rt = make_runtime(CellSpec(runtime="llama.cpp"))
    rt.load(find_embedded_gguf(), "gguf", 2, 512)
    questions = [json.loads(x)["prompt"] for x in (DATA_DIR / "generation" / "chat-prompts.jsonl").read_text().splitlines()]
    prompts = [[1] + rt.tokenize(f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n") for q in questions[:20]]
    base = rt.generate_many(prompts, 32)
    order = list(range(len(prompts)))
    random.Random(7).shuffle(order)
    shuffled = rt.generate_many([prompts[i] for i in order], 32)
    assert [shuffled[order.index(i)] for i in range(len(prompts))] == base
    assert rt.generate_many(prompts[3:8], 32) == base[3:8]  # other neighbours, another group size
    assert rt.generate_many([prompts[9]], 32) == [base[9]]  # alone
