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


def test_ifbench_a_looping_answer_that_satisfies_its_instruction_is_not_followed(tokenizer_dir, tmp_path,
                                                                                  monkeypatch):
    """The same rule on the published set: IFBench's own checker says the loop follows, the measure says damage."""
    from tokenizers import Tokenizer

    from harness.if_reference import followed

    monkeypatch.setenv("QC_CACHE_DIR", str(tmp_path))
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    title = [{"id": "format:title_case", "kwargs": {}}]  # IFBench: write the answer in title case
    text = "Describe a park in title case."
    prompts = [InstructPrompt(f"p{i}", "", title, text, [1, 2, 3]) for i in range(2)]
    sound = "The Park Is Quiet In The Early Morning, And The Grass Is Wet With Dew."
    looping = " ".join(["Apple Banana Cherry Delta."] * 10)
    assert followed(looping, title[0], text) == (True, True)  # the reference checker alone would count it
    cell = _Cell([tok.encode(sound).ids, tok.encode(looping).ids])
    d = section(prompts, {"eos_ids": [], "checker": "ifbench"}, [cell], 96, tokenizer_dir)["cells"][0]
    assert d["prompt_strict"] == [True, False] and d["followed_but_degenerate"] == [False, True]
