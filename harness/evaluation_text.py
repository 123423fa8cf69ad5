"""Tokenize the evaluation text once, with the source tokenizer, into shared windows."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from evaluators.windows import Windows, build_windows
from harness.errors import UserError

SANITY_PROMPT = "The capital of France is"


@dataclass
class Prepared:
    windows: Windows
    path: Path
    info: dict
    sanity_prompt_ids: list[int]
    probe: dict


def _tokenizer(source_path: Path):
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(source_path))
    except Exception as e:
        raise UserError(f"cannot load the tokenizer of '{source_path}': {str(e).splitlines()[0][:200]}") from None


def prepare_windows(source, text_file: Path, settings, work_dir: Path) -> Prepared:
    work_dir.mkdir(parents=True, exist_ok=True)
    raw = text_file.read_bytes()
    text_sha = hashlib.sha256(raw).hexdigest()
    tok_files = [source.path / n for n in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model") if (source.path / n).exists()]
    tok_sha = hashlib.sha256(b"".join(f.read_bytes() for f in tok_files)).hexdigest()
    key = hashlib.sha256(json.dumps([text_sha, tok_sha, settings.n_ctx, settings.score_from, settings.max_windows]).encode()).hexdigest()[:16]
    path = work_dir / f"windows-{key}.npz"
    meta_path = work_dir / f"windows-{key}.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return Prepared(Windows.load(path), path, meta["info"], meta["sanity_prompt_ids"], meta["probe"])
    tok = _tokenizer(source.path)
    text = raw.decode("utf-8")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with_special = tok("a", add_special_tokens=True)["input_ids"]
    adds_bos = tok.bos_token_id is not None and len(with_special) > 0 and with_special[0] == tok.bos_token_id
    bos = tok.bos_token_id if adds_bos else None
    try:
        win = build_windows(ids, settings.n_ctx, settings.score_from, settings.max_windows, bos)
    except ValueError as e:
        raise UserError(f"evaluation text {text_file}: {e}") from None
    win.save(path)
    probe_text = text[:4000]
    probe = {"text": probe_text, "ids": tok(probe_text, add_special_tokens=False)["input_ids"]}
    sanity = tok(SANITY_PROMPT, add_special_tokens=False)["input_ids"]
    if bos is not None:
        sanity = [bos] + sanity
    info = {
        "text_file": text_file.name,
        "text_sha256": text_sha,
        "text_tokens": len(ids),
        "tokenizer_sha256": tok_sha,
        "n_ctx": win.n_ctx,
        "n_windows": win.n_windows,
        "windows_available": len(ids) // win.n_ctx,
        "first_scored_position": win.first,
        "scored_per_window": win.scored_per_window,
        "scored_tokens": win.n_windows * win.scored_per_window,
        "bos_replaced": bos is not None,
        "windows_sha256": win.sha256(),
        "protocol": "non-overlapping windows of n_ctx tokens; logits at positions first..n_ctx-2 score tokens first+1..n_ctx-1 (llama-perplexity's rule)",
    }
    meta_path.write_text(json.dumps({"info": info, "sanity_prompt_ids": sanity, "probe": probe}))
    return Prepared(win, path, info, sanity, probe)


def decode(source_path: Path, ids: list[int]) -> str:
    """Text of token ids; through the `tokenizers` library when the source has a tokenizer.json
    (no transformers import: a cached re-run stays fast)."""
    tj = Path(source_path) / "tokenizer.json"
    if tj.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(tj)).decode(ids, skip_special_tokens=False)
    return _tokenizer(source_path).decode(ids, skip_special_tokens=False)
