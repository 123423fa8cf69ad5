"""The inputs every cell of a run shares: the evaluation text tokenized once, with the source tokenizer, into
windows (evaluators/windows.py), the tokenizer probe and the sanity prompt; and the calibration text's check."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from evaluators.windows import Windows, article_starts, build_windows, window_clusters
from core.errors import UserError

SANITY_PROMPT = "The capital of France is"
WINDOWS_FORMAT = 2  # part of the windows' cache key: 2 added positions and clusters


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
    choice, seed = settings.window_choice, settings.window_seed
    key = hashlib.sha256(json.dumps([text_sha, tok_sha, settings.n_ctx, settings.score_from, settings.windows,
                                     choice, seed, WINDOWS_FORMAT]).encode()).hexdigest()[:16]
    path = work_dir / f"windows-{key}.npz"
    meta_path = work_dir / f"windows-{key}.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return Prepared(Windows.load(path), path, meta["info"], meta["sanity_prompt_ids"], meta["probe"])
    tok = _tokenizer(source.path)
    text = raw.decode("utf-8")
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=tok.is_fast)
    ids = enc["input_ids"]
    token_starts = [a for a, _ in enc["offset_mapping"]] if tok.is_fast else None
    with_special = tok("a", add_special_tokens=True)["input_ids"]
    adds_bos = tok.bos_token_id is not None and len(with_special) > 0 and with_special[0] == tok.bos_token_id
    bos = tok.bos_token_id if adds_bos else None
    try:
        win = build_windows(ids, settings.n_ctx, settings.score_from, settings.windows, bos, choice, seed)
    except ValueError as e:
        raise UserError(f"evaluation text {text_file}: {e}") from None
    starts = article_starts(text)
    clusters, cluster_kind = window_clusters(win.positions, win.first, win.n_ctx, token_starts, starts)
    available = len(ids) // win.n_ctx
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
        "windows_available": available,
        "choice": (f"all {available} windows of the text" if win.n_windows == available else
                   f"the first {win.n_windows} of the text's {available}" if choice == "first" else
                   f"{win.n_windows} of the text's {available}, drawn at random (seed {seed}) and scored in text order"),
        "window_choice": choice,
        "window_seed": seed,
        "positions": [int(p) for p in win.positions],
        "clusters": clusters,
        "cluster_kind": cluster_kind,
        "n_clusters": len(set(clusters)),
        "articles_in_text": len(starts),
        "first_scored_position": win.first,
        "scored_per_window": win.scored_per_window,
        "scored_tokens": win.n_windows * win.scored_per_window,
        "bos_replaced": bos is not None,
        "windows_sha256": win.sha256(),
        "protocol": "non-overlapping windows of n_ctx tokens; logits at positions first..n_ctx-2 score tokens first+1..n_ctx-1 (llama-perplexity's rule)",
    }
    meta_path.write_text(json.dumps({"info": info, "sanity_prompt_ids": sanity, "probe": probe}))
    return Prepared(win, path, info, sanity, probe)


@lru_cache(maxsize=4)
def _decoder(source_path: str):
    """The source's tokenizer for decoding, loaded once: through the `tokenizers` library when the source has a
    tokenizer.json (no transformers import: a cached re-run stays fast)."""
    tj = Path(source_path) / "tokenizer.json"
    if tj.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(tj))
    return _tokenizer(Path(source_path))


def decode(source_path: Path, ids: list[int]) -> str:
    """Text of token ids, with the source's own tokenizer."""
    return _decoder(str(source_path)).decode([int(t) for t in ids], skip_special_tokens=False)


def calibration_texts(calib_file: Path) -> list[str]:
    """The calibration texts of a .txt (a line each) or .jsonl (a 'text' field each) file."""
    try:
        raw = calib_file.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the calibration file '{calib_file}': {e.strerror or e}") from None
    if b"\x00" in raw[:65536]:
        raise UserError(f"calibration file '{calib_file}' is binary, not text (.txt lines or .jsonl with a 'text' field)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"calibration file '{calib_file}' is not UTF-8 text") from None
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                out.append(str(json.loads(line)["text"]))
            except (ValueError, KeyError, TypeError):
                raise UserError(f"calibration file '{calib_file}', line {i}: not a JSON object with a 'text' field") from None
        else:
            out.append(line)
    return out


OVERLAP_NGRAM = 13  # words: the contamination unit of GPT-3's and lm-eval's decontamination checks


def _squash(text: str) -> str:
    return " ".join(text.split())


def _words(text: str) -> list[str]:
    """Lowercased words without punctuation (WikiText's " @-@ " and " , " spacing aside)."""
    import re

    return re.findall(r"[a-z0-9]+", text.lower())


def _ngrams(words: list[str], n: int = OVERLAP_NGRAM):
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def calibration_overlap(texts: list[str], eval_text: str) -> list[str]:
    """Calibration passages that share a run of OVERLAP_NGRAM words with the evaluation text, wherever in the
    passage (a test paragraph behind a prefix too), as lm-eval's decontamination counts an overlap."""
    scored = _ngrams(_words(eval_text))
    return [_squash(t) for t in texts if not _ngrams(_words(t)).isdisjoint(scored)]


def uses_calibration(cfg) -> bool:
    """AWQ, an importance matrix or a sensitivity sweep (and so a mix) read the calibration text."""
    return not cfg.synthetic and (cfg.sensitivity or any(v.startswith("awq") or v.endswith("-imatrix")
                                                         for v in cfg.variants))


def check_calibration(calib_file: Path, source, cfg, eval_file: Path | None = None) -> None:
    """Refuse calibration text that cannot make one AWQ / imatrix sample, or that overlaps the text the run
    scores (a variant calibrated on the evaluation text is measured on what it was fitted to), before anything
    is built."""
    if not uses_calibration(cfg):
        return
    texts = calibration_texts(calib_file)
    if not texts:
        raise UserError(f"calibration file '{calib_file}' holds no text")
    if eval_file is not None:
        try:
            eval_text = Path(eval_file).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise UserError(f"cannot read the evaluation text '{eval_file}': {e.strerror or e}") from None
        shared = calibration_overlap(texts, eval_text)
        if shared:
            raise UserError(f"calibration file '{calib_file}' overlaps the evaluation text '{eval_file}': "
                            f"{len(shared)} passage(s) appear in both (first: \"{shared[0][:60]}…\"); "
                            "calibrate on other text")
    tj = Path(source.path) / "tokenizer.json"
    if not tj.is_file():
        return
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tj))
    n = sum(len(e.ids) for e in tok.encode_batch(texts[:2000], add_special_tokens=False))
    need = cfg.awq.calib_seq_len
    if n < need:
        raise UserError(f"calibration file '{calib_file}' has {n} tokens, fewer than one calibration sample "
                        f"({need} tokens, --awq-calib-seq-len); give more text")
