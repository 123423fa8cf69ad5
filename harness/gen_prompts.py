"""The prompts of the generation comparison, the same token ids for every cell:

- chat: "How do I …" questions made from PIQA validation goals (data/generation/chat-prompts.jsonl, documents
  after the first 1,000, which lm-eval's piqa task does not reach at its default limit), rendered with the
  model's own chat template when it has one, else the bare question and a newline;
- text: the openings (first OPENING_WORDS words) of WikiText-2 test paragraphs that no scored window contains,
  spread over the text.

Built once per tokenizer, window choice and count, and cached beside the windows."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.paths import DATA_DIR

CHAT_PROMPTS = DATA_DIR / "generation" / "chat-prompts.jsonl"
OPENING_WORDS = 24
MIN_PARAGRAPH_CHARS = 300
PROMPTS_FORMAT = 1


@dataclass(frozen=True)
class GenPrompt:
    set: str  # chat | text
    source: str  # where it comes from (a PIQA document id, a character offset of the text)
    text: str  # the question or opening as written
    ids: list  # the token ids every cell continues


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """(character offset, paragraph) of the text's body paragraphs (headings and short lines skipped)."""
    out, pos = [], 0
    for line in text.split("\n"):
        s = line.strip()
        if len(s) >= MIN_PARAGRAPH_CHARS and not s.startswith("="):
            out.append((pos + line.index(s[0]), s))
        pos += len(line) + 1
    return out


def _drawn(pool: int, n: int, seed: int) -> list[int]:
    """n of range(pool): evenly spread for seed 0, else a seeded sample without replacement, in order."""
    n = min(n, pool)
    if seed == 0:
        step = pool / n if n else 1
        return [int(i * step) for i in range(n)]
    import numpy as np

    return sorted(int(i) for i in np.random.default_rng(seed).choice(pool, size=n, replace=False))


def text_openings(text: str, scored_text: list[str], n: int, seed: int = 0) -> list[tuple[int, str]]:
    """n paragraph openings over the text (spread evenly, or drawn with `seed`), skipping paragraphs a scored
    window contains."""
    paras = [(off, p) for off, p in _paragraphs(text) if not any(p[:80] in w for w in scored_text)]
    if n <= 0 or not paras:
        return []
    picked = [paras[i] for i in _drawn(len(paras), n, seed)]
    return [(off, " ".join(p.split()[:OPENING_WORDS])) for off, p in picked]


def _chat_ids(tok, question: str) -> list[int]:
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    return tok(question + "\n", add_special_tokens=True)["input_ids"]


def end_ids(tok, source_path: Path) -> list[int]:
    """The tokens that end a continuation: the tokenizer's end of sequence and generation_config.json's."""
    eos = {int(t) for t in (tok.eos_token_id if isinstance(tok.eos_token_id, list) else [tok.eos_token_id])
           if t is not None}
    try:
        cfg = json.loads((source_path / "generation_config.json").read_text())
        extra = cfg.get("eos_token_id")
        eos |= {int(t) for t in (extra if isinstance(extra, list) else [extra]) if t is not None}
    except (OSError, ValueError):
        pass
    return sorted(eos)


def prepare_prompts(source, text_file: Path, prepared, n: int, work_dir: Path,
                    seed: int = 0) -> tuple[list[GenPrompt], dict]:
    """n chat prompts and n text openings (fewer when the data has fewer), their token ids, and facts for
    results.json (whether a chat template was used, the end-of-sequence ids)."""
    if n <= 0:
        return [], {}
    tok_files = [source.path / f for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
                 if (source.path / f).exists()]
    key = hashlib.sha256(json.dumps([hashlib.sha256(b"".join(f.read_bytes() for f in tok_files)).hexdigest(),
                                     hashlib.sha256(CHAT_PROMPTS.read_bytes()).hexdigest(),
                                     prepared.info["text_sha256"], prepared.info["windows_sha256"], n,
                                     PROMPTS_FORMAT] + ([seed] if seed else [])).encode()).hexdigest()[:16]
    cache = work_dir / f"gen-prompts-{key}.json"
    if cache.is_file():
        d = json.loads(cache.read_text())
        return [GenPrompt(**p) for p in d["prompts"]], d["info"]
    from harness.shared_inputs import _tokenizer, decode

    tok = _tokenizer(source.path)
    pool = [json.loads(line) for line in CHAT_PROMPTS.read_text().splitlines() if line.strip()]
    questions = pool[:n] if seed == 0 else [pool[i] for i in _drawn(len(pool), n, seed)]
    prompts = [GenPrompt("chat", q["id"], q["prompt"], [int(t) for t in _chat_ids(tok, q["prompt"])]) for q in questions]
    scored = [decode(source.path, [int(t) for t in w]) for w in prepared.windows.ids]
    for off, opening in text_openings(text_file.read_text(encoding="utf-8"), scored, n, seed):
        prompts.append(GenPrompt("text", f"{text_file.name}@{off}", opening,
                                 [int(t) for t in tok(opening, add_special_tokens=True)["input_ids"]]))
    info = {"chat_template": bool(getattr(tok, "chat_template", None)), "eos_ids": end_ids(tok, source.path),
            "chat_source": f"{CHAT_PROMPTS.relative_to(DATA_DIR.parent)}", "text_source": text_file.name,
            "opening_words": OPENING_WORDS, "seed": seed}
    cache.write_text(json.dumps({"prompts": [asdict(p) for p in prompts], "info": info}))
    return prompts, info
