"""A looping or empty answer never counts as an instruction followed (issue 37): in the default run Q4_K_M
"followed" "highlight at least one section" by writing "*Highlighted section*" over and over."""
from harness.instruct_doc import section
from harness.instruct_prompts import InstructPrompt


class _Cell:
    variant, runtime, ok = "gguf-q4_k_m", "llama.cpp", True

    def __init__(self, tokens):
        self.result = {"instruct": {"tokens": tokens, "seconds": 1.0}}

    def doc(self):
        return {"variant": self.variant, "runtime": self.runtime, "status": "ok"}


def test_a_looping_answer_that_satisfies_its_instruction_is_not_followed(tokenizer_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    no_comma = [{"id": "punctuation:no_comma", "kwargs": {}}]
    prompts = [InstructPrompt(f"p{i}", "t", no_comma, "Describe a park without commas.", [1, 2, 3]) for i in range(3)]
    sound = tok.encode("The park is quiet in the early morning and the grass is wet with dew.").ids
    looping = tok.encode(" *Highlighted section*" * 12).ids
    cell = _Cell([sound, looping, []])
    d = section(prompts, {"eos_ids": []}, [cell], 96, tokenizer_dir)["cells"][0]
    assert d["prompt_strict"] == [True, False, False] and d["prompt_loose"] == [True, False, False]
    assert d["degenerate"] == [False, True, True]
    assert d["followed_but_degenerate"] == [False, True, False]  # the loop had no comma: followed, yet damage
    assert d["strict"] == [[True], [False], [False]]
