"""Verifiable instructions (IFEval's rules, Zhou et al. 2023), each defined once here: the sentence a prompt
carries and the check of a response against it. harness/instruct_prompts.py builds the prompts from them; the
results, the report and the gate read the checks' outcomes.

lm-eval's own `ifeval` task cannot run here: its data is on the Hugging Face hub and it downloads nltk's punkt
tables when imported. These checks follow its instruction ids and rules, with two stated differences: words are
`\\w+` runs (what IFEval's nltk RegexpTokenizer(r"\\w+") counts too) and sentences end at ., ! or ? before a space or
the end (IFEval splits with its own abbreviation-aware regexes). Instructions that need a language detector are
left out.

Strict: the response as written. Loose (IFEval's): the instruction counts as followed when any of the response,
the response without its first line, without its last line, or without both, each also with every '*' removed,
is non-empty and follows it."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable

END_PHRASES = ("Is there anything else I can help with?", "Let me know if you have additional questions.",
               "Any other questions?")


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _sentences(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if re.search(r"\w", s)])


def _compare(n: int, relation: str, target: int) -> bool:
    return n < target if relation == "less than" else n >= target


def _paragraphs(text: str, n: int) -> bool:
    parts = re.split(r"\s?\*\*\*\s?", text)
    if any(not p.strip() for p in parts[1:-1]):  # an empty paragraph between two dividers
        return False
    return len([p for p in parts if p.strip()]) == n


def _bullets(text: str) -> int:
    return len(re.findall(r"^\s*\*[^\*].*$", text, re.M)) + len(re.findall(r"^\s*-.*$", text, re.M))


def _highlights(text: str) -> int:
    one = [h for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip()]
    two = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h.removeprefix("**").removesuffix("**").strip()]
    return len(one) + len(two)


def _json(text: str) -> bool:
    t = text.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        t = t.removeprefix(fence)
    t = t.removesuffix("```").strip()
    try:
        json.loads(t)
    except ValueError:
        return False
    return True


def _sections(text: str, n: int) -> bool:
    return len(re.split(r"\s?SECTION\s?\d+\s?", text)) - 1 >= n


def _two_responses(text: str) -> bool:
    parts = text.split("******")
    if any(not p.strip() for p in parts[1:-1]):  # an empty response between two separators
        return False
    valid = [p.strip() for p in parts if p.strip()]
    return len(valid) == 2 and valid[0] != valid[1]


@dataclass(frozen=True)
class Instruction:
    id: str  # IFEval's instruction id
    text: Callable[[dict], str]  # kwargs -> the sentence the prompt carries
    check: Callable[[str, dict], bool]  # (response, kwargs) -> followed
    choices: tuple[dict, ...] = ({},)  # the kwargs a prompt may draw (kept within a short generation budget)


INSTRUCTIONS: dict[str, Instruction] = {i.id: i for i in (
    Instruction("punctuation:no_comma", lambda k: "Do not use any commas in your response.",
                lambda r, k: "," not in r),
    Instruction("change_case:english_lowercase",
                lambda k: "Your entire response should be in English, and in all lowercase letters. No capital letters "
                          "are allowed.", lambda r, k: r == r.lower()),
    Instruction("change_case:english_capital",
                lambda k: "Your entire response should be in English, and in all capital letters.",
                lambda r, k: r == r.upper()),
    Instruction("change_case:capital_word_frequency",
                lambda k: f"In your response, words with all capital letters should appear {k['relation']} "
                          f"{k['n']} times.",
                lambda r, k: _compare(sum(w.isupper() for w in re.findall(r"\w+", r)), k["relation"], k["n"]),
                ({"relation": "at least", "n": 2}, {"relation": "at least", "n": 3}, {"relation": "less than", "n": 2})),
    Instruction("length_constraints:number_words", lambda k: f"Answer with {k['relation']} {k['n']} words.",
                lambda r, k: _compare(_words(r), k["relation"], k["n"]),
                ({"relation": "less than", "n": 40}, {"relation": "less than", "n": 60},
                 {"relation": "at least", "n": 30}, {"relation": "at least", "n": 50})),
    Instruction("length_constraints:number_sentences",
                lambda k: f"Your response should contain {k['relation']} {k['n']} sentences.",
                lambda r, k: _compare(_sentences(r), k["relation"], k["n"]),
                ({"relation": "less than", "n": 3}, {"relation": "less than", "n": 5}, {"relation": "at least", "n": 3})),
    Instruction("length_constraints:number_paragraphs",
                lambda k: f"There should be {k['n']} paragraphs. Paragraphs are separated with the markdown divider: ***",
                lambda r, k: _paragraphs(r, k["n"]), ({"n": 2}, {"n": 3})),
    Instruction("keywords:existence", lambda k: f"Include keywords {', '.join(k['keywords'])} in the response.",
                lambda r, k: all(re.search(w, r, re.I) for w in k["keywords"]),
                ({"keywords": ["water", "light"]}, {"keywords": ["friend"]}, {"keywords": ["simple", "time"]},
                 {"keywords": ["morning"]})),
    Instruction("keywords:forbidden_words", lambda k: f"Do not include keywords {', '.join(k['words'])} in the response.",
                lambda r, k: not any(re.search(r"\b" + w + r"\b", r, re.I) for w in k["words"]),
                ({"words": ["the"]}, {"words": ["very", "really"]}, {"words": ["and"]})),
    Instruction("keywords:frequency",
                lambda k: f"In your response, the word {k['word']} should appear {k['relation']} {k['n']} times.",
                lambda r, k: _compare(len(re.findall(k["word"], r, re.I)), k["relation"], k["n"]),
                ({"word": "good", "relation": "at least", "n": 2}, {"word": "you", "relation": "at least", "n": 3},
                 {"word": "it", "relation": "less than", "n": 2})),
    Instruction("keywords:letter_frequency",
                lambda k: f"In your response, the letter {k['letter']} should appear {k['relation']} {k['n']} times.",
                lambda r, k: _compare(r.lower().count(k["letter"]), k["relation"], k["n"]),
                ({"letter": "z", "relation": "at least", "n": 2}, {"letter": "e", "relation": "less than", "n": 10},
                 {"letter": "q", "relation": "at least", "n": 1})),
    Instruction("detectable_format:number_bullet_lists",
                lambda k: f"Your answer must contain exactly {k['n']} bullet points. Use the markdown bullet points such "
                          "as:\n* This is point 1.\n* This is point 2",
                lambda r, k: _bullets(r) == k["n"], ({"n": 2}, {"n": 3}, {"n": 4})),
    Instruction("detectable_format:title",
                lambda k: "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
                lambda r, k: any(t.strip() for t in re.findall(r"<<([^\n]+)>>", r))),
    Instruction("detectable_format:number_highlighted_sections",
                lambda k: f"Highlight at least {k['n']} sections in your answer with markdown, i.e. *highlighted section*.",
                lambda r, k: _highlights(r) >= k["n"], ({"n": 1}, {"n": 2})),
    Instruction("detectable_format:json_format",
                lambda k: "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
                lambda r, k: _json(r)),
    Instruction("detectable_format:multiple_sections",
                lambda k: f"Your response must have {k['n']} sections. Mark the beginning of each section with SECTION X, "
                          "such as:\nSECTION 1\n[content of section 1]\nSECTION 2\n[content of section 2]",
                lambda r, k: _sections(r, k["n"]), ({"n": 2},)),
    Instruction("startend:end_checker",
                lambda k: f"Finish your response with this exact phrase \"{k['phrase']}\". No other words should follow "
                          "this phrase.",
                lambda r, k: r.strip().strip('"').lower().endswith(k["phrase"].lower()),
                tuple({"phrase": p} for p in END_PHRASES)),
    Instruction("startend:quotation", lambda k: "Wrap your entire response with double quotation marks.",
                lambda r, k: len(r.strip()) > 1 and r.strip()[0] == '"' and r.strip()[-1] == '"'),
    Instruction("detectable_content:postscript",
                lambda k: "At the end of your response, please explicitly add a postscript starting with P.S.",
                lambda r, k: re.search(r"\s*p\.\s?s\..*$", r.lower(), re.M) is not None),
    Instruction("detectable_content:number_placeholders",
                lambda k: f"The response must contain at least {k['n']} placeholders represented by square brackets, "
                          "such as [address].",
                lambda r, k: len(re.findall(r"\[.*?\]", r)) >= k["n"], ({"n": 1}, {"n": 2})),
    Instruction("combination:two_responses",
                lambda k: "Give two different responses. Responses and only responses should be separated by 6 asterisk "
                          "symbols: ******.", lambda r, k: _two_responses(r)),
    Instruction("combination:repeat_prompt",
                lambda k: "First repeat the request word for word without change, then give your answer (1. do not say "
                          "any words or characters before repeating the request; 2. the request you need to repeat does "
                          "not include this sentence)",
                lambda r, k: r.strip().lower().startswith(k["prompt_to_repeat"].strip().lower())),
)}

# pairs a prompt never carries together (one would make the other impossible, or IFEval never pairs them)
CONFLICTS = {frozenset(p) for p in (
    ("change_case:english_lowercase", "change_case:english_capital"),
    ("change_case:english_lowercase", "change_case:capital_word_frequency"),
    ("change_case:english_capital", "change_case:capital_word_frequency"),
    ("detectable_format:json_format", "detectable_format:number_paragraphs"),
    ("startend:end_checker", "detectable_content:postscript"),
    ("startend:quotation", "startend:end_checker"),
    ("combination:repeat_prompt", "startend:quotation"),
    ("combination:repeat_prompt", "change_case:english_capital"),
    ("combination:repeat_prompt", "change_case:english_lowercase"),
)} | {frozenset(("combination:two_responses", o)) for o in INSTRUCTIONS if o != "combination:two_responses"} | {
    frozenset(("detectable_format:json_format", o)) for o in INSTRUCTIONS
    if o.startswith(("detectable_format:", "length_constraints:number_paragraphs", "startend:", "combination:"))
    and o != "detectable_format:json_format"}


def _loose_variants(response: str) -> list[str]:
    lines = response.split("\n")
    base = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return base + [b.replace("*", "") for b in base]


def followed(response: str, instruction_id: str, kwargs: dict) -> tuple[bool, bool]:
    """(strict, loose): whether the response follows one instruction."""
    ins = INSTRUCTIONS[instruction_id]
    strict = bool(response.strip()) and bool(ins.check(response, kwargs))
    loose = strict or any(v.strip() and ins.check(v, kwargs) for v in _loose_variants(response))
    return strict, bool(loose)


def judge(response: str, instructions: list[dict], prompt: str = "", checker: str = "home") -> dict:
    """Every instruction of one prompt, strict and loose, and the prompt-level outcomes (all followed); checker
    "ifbench": IFBench's own checks (harness/if_reference.py), "home": the ones above."""
    if checker == "ifbench":
        from harness.if_reference import followed as reference

        each = [reference(response, i, prompt) for i in instructions]
    else:
        each = [followed(response, i["id"], i["kwargs"]) for i in instructions]
    return {"strict": [s for s, _ in each], "loose": [lo for _, lo in each],
            "prompt_strict": all(s for s, _ in each), "prompt_loose": all(lo for _, lo in each)}
