"""Evaluation windows, built once from the source tokenizer's ids and shared by every runtime.

Same protocol as llama.cpp's tools/perplexity: the token stream is cut into consecutive,
non-overlapping windows of n_ctx tokens (its chunks); if the tokenizer adds a BOS token, each window's first
token is replaced by BOS; the logits at positions first .. n_ctx-2 score the tokens
first+1 .. n_ctx-1, where first = n_ctx * score_from (n_ctx/2 by default: every scored token
has at least half a window of context).

Which of the text's windows are scored: by default ("spread") a seeded random sample of max_windows of
them, in text order, so that the windows come from all over the text and not from its first few articles;
"first" takes the first max_windows, as llama-perplexity's --chunks does (make bench compares with it)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Windows:
    ids: np.ndarray  # [n_windows, n_ctx] int32
    first: int  # first logit position that is scored
    bos_id: int | None
    positions: np.ndarray | None = None  # [n_windows] index of each window among the text's windows

    @property
    def n_ctx(self) -> int:
        return int(self.ids.shape[1])

    @property
    def n_windows(self) -> int:
        return int(self.ids.shape[0])

    @property
    def scored_per_window(self) -> int:
        return self.n_ctx - 1 - self.first

    def targets(self, w: int) -> np.ndarray:
        """The token ids scored in window w."""
        return self.ids[w, self.first + 1 :]

    def sha256(self) -> str:
        h = hashlib.sha256(self.ids.tobytes())
        h.update(f"{self.first}:{self.bos_id}".encode())
        if self.positions is not None:
            h.update(np.asarray(self.positions, dtype=np.int64).tobytes())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        pos = np.arange(self.n_windows) if self.positions is None else self.positions
        np.savez(tmp, ids=self.ids, first=self.first, bos_id=-1 if self.bos_id is None else self.bos_id, positions=pos)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Windows":
        with np.load(path) as z:
            bos = int(z["bos_id"])
            pos = z["positions"].astype(np.int64) if "positions" in z.files else None
            return cls(z["ids"].astype(np.int32), int(z["first"]), None if bos < 0 else bos, pos)


CHOICES = ("spread", "first")


def choose_windows(available: int, n: int | None, choice: str = "spread", seed: int = 0) -> np.ndarray:
    """Indices (in text order) of the windows to score among `available`: all of them when n is None or
    at least `available`; else the first n, or a seeded random sample of n (choice "spread")."""
    if choice not in CHOICES:
        raise ValueError(f"window choice must be one of {', '.join(CHOICES)}")
    if n is None or n >= available:
        return np.arange(available)
    if choice == "first":
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(available, size=n, replace=False))


def build_windows(
    tokens: list[int] | np.ndarray,
    n_ctx: int = 512,
    score_from: float = 0.5,
    max_windows: int | None = None,
    bos_id: int | None = None,
    choice: str = "first",
    seed: int = 0,
) -> Windows:
    """Cut `tokens` into windows and keep the chosen ones (see module docstring)."""
    if n_ctx < 4:
        raise ValueError("n_ctx must be at least 4")
    if not 0.0 <= score_from < 1.0:
        raise ValueError("score_from must be in [0, 1)")
    toks = np.asarray(tokens, dtype=np.int32)
    available = len(toks) // n_ctx
    if available == 0:
        raise ValueError(f"the text has {len(toks)} tokens, fewer than one window of {n_ctx}")
    pos = choose_windows(available, max_windows, choice, seed)
    ids = toks[: available * n_ctx].reshape(available, n_ctx)[pos].copy()
    if bos_id is not None:
        ids[:, 0] = bos_id
    first = min(int(n_ctx * score_from), n_ctx - 2)
    return Windows(ids, first, bos_id, pos)


def article_starts(text: str) -> list[int]:
    """Character offsets where the articles of a WikiText file begin (its " = Title = " lines; sections
    are " = = Section = = "); [] for a text without them."""
    import re

    return [m.start() for m in re.finditer(r"^ = [^=\n].* = $", text, flags=re.M)]


BLOCK_WINDOWS = 8  # without articles, windows are grouped in blocks of this many consecutive ones


def window_clusters(positions: np.ndarray, first: int, n_ctx: int, token_starts: list[int] | None,
                    starts: list[int]) -> tuple[list[int], str]:
    """The cluster of each chosen window, and what a cluster is: the article its first scored token is in
    (token_starts: each token's character offset), else its block of BLOCK_WINDOWS consecutive windows."""
    import bisect

    if starts and token_starts:
        out = []
        for p in positions:
            t = int(p) * n_ctx + first + 1
            out.append(max(0, bisect.bisect_right(starts, token_starts[min(t, len(token_starts) - 1)]) - 1))
        return out, "article"
    return [int(p) // BLOCK_WINDOWS for p in positions], f"block of {BLOCK_WINDOWS} consecutive windows"


@dataclass(frozen=True)
class Needle:
    """A fact planted in a long window (harness/long_probes.py) and where its answer's value is."""

    window: int
    length: int  # tokens of its window
    depth_pct: int  # where in the haystack it was planted (nominal: 10, 30, 50, 70, 90 for five needles)
    key: str
    value: str
    position: int  # token index of the fact's first token in the window
    answer_start: int  # token index of the value's first token in the answer
    answer_len: int


@dataclass
class LongProbes:
    """Long windows of different lengths with planted facts, the same token ids for every cell."""

    windows: list[np.ndarray]  # int32 token ids, one array per window
    needles: list[Needle]
    info: dict

    def sha256(self) -> str:
        h = hashlib.sha256()
        for w in self.windows:
            h.update(np.asarray(w, dtype=np.int32).tobytes() + b"|")
        h.update(json.dumps([asdict(n) for n in self.needles]).encode())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        lengths = np.array([len(w) for w in self.windows], dtype=np.int64)
        with open(tmp, "wb") as f:
            np.savez(f, ids=np.concatenate(self.windows).astype(np.int32), lengths=lengths,
                     meta=np.frombuffer(json.dumps({"needles": [asdict(n) for n in self.needles],
                                                    "info": self.info}).encode(), dtype=np.uint8))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "LongProbes":
        with np.load(path) as z:
            ids, lengths = z["ids"].astype(np.int32), z["lengths"]
            meta = json.loads(bytes(z["meta"]).decode())
        cuts = np.cumsum(lengths)[:-1]
        return cls(list(np.split(ids, cuts)), [Needle(**n) for n in meta["needles"]], meta["info"])
