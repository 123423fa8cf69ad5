"""The instruction-following prompts, rendered with the model's own chat template, the same token ids for every cell:
- ifbench (the default): IFBench's published test prompts, n of them chosen by the seed (harness/if_reference.py);
- home: a short writing task written here with one or two IFEval-style instructions (harness/instructions.py), built
  deterministically from a seed. Its checks are this harness's own, not validated against IFEval's.
Nothing is downloaded: both sets come with the installed packages or this repository."""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.instructions import CONFLICTS, INSTRUCTIONS

PROMPTS_FORMAT = 2  # 2: the set (IFBench's published prompts or the home-made ones) is part of the key
TWO_INSTRUCTIONS_SHARE = 0.4  # the rest carry one
SINGLE_ONLY = ("combination:",)  # IFEval's combinations stand alone here (their checks read the whole response)

TASKS = (
    "Write a short description of a city park in the early morning.",
    "Explain why people like to drink coffee.",
    "Describe how to make a cup of tea.",
    "Write a short letter to a friend about your weekend.",
    "Give some advice to a student starting at a new school.",
    "Describe your favourite season of the year.",
    "Write a short story about a lost dog that finds its way home.",
    "Explain how a bicycle works to a child.",
    "Write a product description for a reusable water bottle.",
    "Describe a busy train station.",
    "Explain why sleep is important for health.",
    "Write a short poem about the sea.",
    "Give tips for keeping a small garden.",
    "Describe the taste of a fresh orange.",
    "Write a short speech to welcome new members to a book club.",
    "Explain what a library is for.",
    "Write a review of a restaurant you imagine.",
    "Describe how to plan a picnic.",
    "Explain why exercise is good for you.",
    "Write a short note thanking a neighbour for their help.",
    "Describe a rainy day in a small town.",
    "Give advice on how to save money.",
    "Write an invitation to a birthday party.",
    "Explain how plants get their food.",
    "Describe a walk in the mountains.",
    "Write a short blog post about learning to cook.",
    "Explain why reading books is useful.",
    "Describe the first day of a new job.",
    "Write a short advertisement for a bakery.",
    "Give instructions for washing a car.",
    "Explain what makes a good friend.",
    "Describe a market on a Saturday morning.",
    "Write a short story about a robot that learns to paint.",
    "Explain how to take care of a cat.",
    "Write a short summary of why people travel.",
    "Describe the view from a tall building at night.",
    "Give advice for a job interview.",
    "Explain why the sky looks blue.",
    "Write a short diary entry about a snowy day.",
    "Describe how to pack for a camping trip.",
)


@dataclass(frozen=True)
class InstructPrompt:
    id: str
    task: str
    instructions: list  # [{"id": IFEval instruction id, "kwargs": {...}}]
    text: str  # the user message as the model reads it
    ids: list  # token ids (chat template applied where the model has one)


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def build(n: int, seed: int = 0) -> list[tuple[str, list[dict], str]]:
    """n (task, instructions, user message), the same for a given n and seed on every machine."""
    rng = random.Random(seed)
    order = list(range(len(TASKS)))
    rng.shuffle(order)
    ids = sorted(INSTRUCTIONS)
    out = []
    for i in range(n):
        task = TASKS[order[i % len(order)]]
        first = ids[(i + seed) % len(ids)]  # every instruction equally often
        chosen = [first]
        if not first.startswith(SINGLE_ONLY) and rng.random() < TWO_INSTRUCTIONS_SHARE:
            others = [o for o in ids if o != first and not o.startswith(SINGLE_ONLY)
                      and frozenset((first, o)) not in CONFLICTS]
            chosen.append(rng.choice(others))
        instructions = []
        for iid in chosen:
            kw = dict(rng.choice(INSTRUCTIONS[iid].choices))
            if iid == "combination:repeat_prompt":
                kw["prompt_to_repeat"] = task
            instructions.append({"id": iid, "kwargs": kw})
        text = " ".join([task] + [INSTRUCTIONS[x["id"]].text(x["kwargs"]) for x in instructions])
        out.append((task, instructions, text))
    return out


def _rows(n: int, seed: int, set_name: str) -> list[tuple[str, str, list[dict], str]]:
    """(id, task, instructions, user message) of the set's n prompts for this seed."""
    if set_name == "ifbench":
        from harness.if_reference import sample

        return [(f"ifbench-{r['key']}", "", r["instructions"], r["prompt"]) for r in sample(n, seed)]
    return [(f"if-{seed}-{i}", task, ins, text) for i, (task, ins, text) in enumerate(build(n, seed))]


def _key(source_path: Path, n: int, seed: int, set_name: str = "home") -> str:
    tok_files = [source_path / f for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
                 if (source_path / f).exists()]
    spec = [hashlib.sha256(b"".join(f.read_bytes() for f in tok_files)).hexdigest(), n, seed, PROMPTS_FORMAT,
            set_name, [[i, ins, t] for i, _, ins, t in _rows(n, seed, set_name)]]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def prepare_instructions(source, n: int, seed: int, work_dir: Path, set_name: str = "ifbench"
                         ) -> tuple[list[InstructPrompt], dict]:
    """The prompts with their token ids, and facts for results.json (chat template used, end-of-sequence ids,
    the set and its checker)."""
    if n <= 0:
        return [], {}
    cache = work_dir / f"instruct-prompts-{_key(source.path, n, seed, set_name)}.json"
    if cache.is_file():
        d = json.loads(cache.read_text())
        return [InstructPrompt(**p) for p in d["prompts"]], d["info"]
    from harness.gen_prompts import _chat_ids, end_ids
    from harness.shared_inputs import _tokenizer

    tok = _tokenizer(source.path)
    prompts = [InstructPrompt(pid, task, ins, text, [int(t) for t in _chat_ids(tok, text)])
               for pid, task, ins, text in _rows(n, seed, set_name)]
    info = {"chat_template": bool(getattr(tok, "chat_template", None)), "eos_ids": end_ids(tok, source.path),
            "seed": seed, "n": len(prompts), "set": set_name, "checker": set_name,
            "instruction_ids": sorted({i["id"] for p in prompts for i in p.instructions})}
    if set_name == "ifbench":
        from harness import if_reference as ref

        info.update({"set_name": ref.SET_NAME, "left_out": {"prompts": ref.left_out_count(), "instructions": ref.LEFT_OUT},
                     "checker_version": _version("if-verifiable")})
    cache.write_text(json.dumps({"prompts": [asdict(p) for p in prompts], "info": info}))
    return prompts, info
