"""Long windows with planted facts, the same token ids for every cell (built once with the source tokenizer).

Each long window is shipped evaluation text (whole WikiText-2 test articles, joined in order from a seeded
article) with NEEDLES key-value facts planted at depths spread over 10–90% of it, followed by one question
and answer per fact, RULER-style:

    … haystack … The special magic number for {key} is {value}. … haystack …
    Question: What is the special magic number for {key}?
    Answer: The special magic number for {key} is {value}.

One forward pass per window gives both measurements: every position's NLL and KLD against fp16 (the
KLD-by-position figures) and, at the answer's value tokens, whether the runtime's own top token is the
value's token at every one of them. That is exactly whether greedy decoding after "… is" would write the
value: a greedy answer is scored exactly, without a second prefill.

Window lengths are long_ctx/8, /4, /2 and long_ctx itself (1k, 2k, 4k, 8k for the default model), with
`per_length` windows each."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluators.windows import LongProbes, Needle, article_starts

PROBES_FORMAT = 1  # part of the probes' cache key
LENGTH_DIVISORS = (8, 4, 2, 1)
MIN_LENGTH = 128
KEYS = ("harbour", "lantern", "orchard", "glacier", "violin", "meadow", "compass", "falcon", "quarry", "saddle",
        "tundra", "beacon", "marble", "walnut", "canyon", "pepper", "ribbon", "summit", "thistle", "anchor")


def lengths_for(long_ctx: int) -> list[int]:
    return sorted({long_ctx // d for d in LENGTH_DIVISORS if long_ctx // d >= MIN_LENGTH})


def depths(n: int) -> list[int]:
    """n depths (percent of the haystack) spread over 10–90%: 10, 30, 50, 70, 90 for five."""
    return [10] if n == 1 else [round(10 + 80 * i / (n - 1)) for i in range(n)]


def _value(rng: np.random.Generator) -> str:
    return str(int(rng.integers(1_000_000, 10_000_000)))


def build_probes(tok_encode, text: str, long_ctx: int, per_length: int, needles: int, seed: int,
                 bos_id: int | None) -> LongProbes:
    """The probes of one source tokenizer (tok_encode: text -> token ids without special tokens)."""
    if needles > len(KEYS):
        raise ValueError(f"at most {len(KEYS)} needles per window")
    rng = np.random.default_rng(seed)
    starts = article_starts(text) or [0]
    windows, planted = [], []
    for length in lengths_for(long_ctx):
        for _ in range(per_length):
            ids, facts = _window(tok_encode, text, starts, rng, length, needles, bos_id, len(windows))
            windows.append(ids)
            planted += facts
    info = {"long_ctx": long_ctx, "lengths": lengths_for(long_ctx), "per_length": per_length,
            "needles_per_window": needles, "seed": seed, "n_windows": len(windows), "n_needles": len(planted),
            "tokens": int(sum(len(w) for w in windows)), "bos": bos_id is not None,
            "fact": "The special magic number for {key} is {value}.",
            "question": "Question: What is the special magic number for {key}? Answer: The special magic number for {key} is",
            "scoring": "every position's NLL and KLD against fp16; a fact is retrieved when the runtime's top token "
                       "is the value's token at each of the value's positions (what greedy decoding would write)"}
    return LongProbes(windows, planted, info)


def _window(tok_encode, text: str, starts: list[int], rng, length: int, needles: int, bos_id, w: int):
    """One long window of `length` tokens and its facts: as many of `needles` as leave at least half the window
    to the haystack (none when not even one does)."""
    start = starts[int(rng.integers(len(starts)))]
    keys = [KEYS[i] for i in rng.permutation(len(KEYS))[:needles]]
    values = [_value(rng) for _ in keys]
    order = [int(i) for i in rng.permutation(needles)]
    head = [bos_id] if bos_id is not None else []
    for k in range(needles, -1, -1):
        facts = [tok_encode(f"\nThe special magic number for {keys[i]} is {values[i]}.\n") for i in range(k)]
        tail, answers = [], []
        for i in [i for i in order if i < k]:
            tail += tok_encode(f"\nQuestion: What is the special magic number for {keys[i]}?\n"
                               f"Answer: The special magic number for {keys[i]} is")
            a = tok_encode(f" {values[i]}")
            answers.append((i, len(tail), len(a)))
            tail += a + tok_encode(".")
        hay_len = length - len(head) - sum(len(f) for f in facts) - len(tail)
        if hay_len >= length // 2:
            break
    hay = _haystack(tok_encode, text, start, hay_len)
    cuts = [round(hay_len * d / 100) for d in depths(k)] if k else []
    parts, positions, prev = list(head), [], 0
    for cut, fact in zip(cuts, facts):
        parts += hay[prev:cut].tolist()
        positions.append(len(parts))
        parts += list(fact)
        prev = cut
    parts += hay[prev:].tolist()
    tail_at = len(parts)
    ids = np.asarray(parts + tail, dtype=np.int32)
    assert len(ids) == length, (len(ids), length)
    return ids, [Needle(w, length, depths(k)[i], keys[i], values[i], positions[i], tail_at + a_at, a_len)
                 for i, a_at, a_len in answers]


def _haystack(tok_encode, text: str, start: int, n: int) -> np.ndarray:
    """n tokens of the text from character `start` (an article's first line) on, wrapping at its end."""
    chars = 6 * n
    while True:
        piece = (text + text)[start: start + chars]
        ids = np.asarray(tok_encode(piece), dtype=np.int32)
        if len(ids) > n or chars >= 2 * len(text):
            if len(ids) <= n:
                raise ValueError(f"the evaluation text has fewer than {n} tokens for a long window")
            return ids[:n]
        chars *= 2


@dataclass(frozen=True)
class PreparedProbes:
    probes: LongProbes
    path: Path
    sha256: str
    n_ctx: int  # the longest window: every long cell's context


def model_context(source_path: Path) -> int | None:
    """The source's own context (config.json's max_position_embeddings), None when it does not say."""
    try:
        return int(json.loads((source_path / "config.json").read_text())["max_position_embeddings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare_probes(source_path: Path, text_file: Path, long_ctx: int, per_length: int, needles: int, seed: int,
                   work_dir: Path) -> PreparedProbes:
    """The run's long probes, cached in its work folder under a key of everything they depend on."""
    raw = text_file.read_bytes()
    tok_files = [source_path / n for n in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
                 if (source_path / n).exists()]
    key = hashlib.sha256(json.dumps([hashlib.sha256(raw).hexdigest(),
                                     hashlib.sha256(b"".join(f.read_bytes() for f in tok_files)).hexdigest(),
                                     long_ctx, per_length, needles, seed, PROBES_FORMAT]).encode()).hexdigest()[:16]
    path = work_dir / f"long-probes-{key}.npz"
    if path.is_file():
        return _prepared(LongProbes.load(path), path)
    from harness.shared_inputs import _tokenizer

    tok = _tokenizer(source_path)
    with_special = tok("a", add_special_tokens=True)["input_ids"]
    bos = tok.bos_token_id if tok.bos_token_id is not None and with_special and with_special[0] == tok.bos_token_id else None
    probes = build_probes(lambda s: tok(s, add_special_tokens=False)["input_ids"], raw.decode("utf-8"), long_ctx,
                          per_length, needles, seed, bos)
    work_dir.mkdir(parents=True, exist_ok=True)
    probes.save(path)
    return _prepared(probes, path)


def _prepared(probes: LongProbes, path: Path) -> PreparedProbes:
    return PreparedProbes(probes, path, probes.sha256(), max(len(w) for w in probes.windows))


def prepare_long(source, text_file: Path, settings, work_dir: Path, console) -> PreparedProbes | None:
    """The run's long probes at --long-ctx, capped at the source's context (None when that leaves no window)."""
    ctx = model_context(source.path)
    long_ctx = min(settings.long_ctx, ctx) if ctx else settings.long_ctx
    if not lengths_for(long_ctx):
        console.line(f"[long] no long windows: the context ({long_ctx} tokens) is below {MIN_LENGTH}")
        return None
    try:
        p = prepare_probes(source.path, text_file, long_ctx, settings.long_windows, settings.needles,
                           settings.long_seed, work_dir)
    except ValueError as e:
        from core.errors import UserError

        raise UserError(f"long windows: {e}") from None
    info = p.probes.info
    capped = f" (--long-ctx {settings.long_ctx} capped at the model's context)" if long_ctx < settings.long_ctx else ""
    console.line(f"[long] {info['n_windows']} long windows of {', '.join(map(str, info['lengths']))} tokens{capped}, "
                 f"{info['n_needles']} planted facts, {info['tokens']:,} tokens per cell")
    return p
