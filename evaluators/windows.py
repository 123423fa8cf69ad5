"""Evaluation windows, built once from the source tokenizer's ids and shared by every runtime.

Same protocol as llama.cpp's tools/perplexity: the token stream is cut into consecutive,
non-overlapping windows of n_ctx tokens; if the tokenizer adds a BOS token, each window's first
token is replaced by BOS; the logits at positions first .. n_ctx-2 score the tokens
first+1 .. n_ctx-1, where first = n_ctx * score_from (n_ctx/2 by default: every scored token
has at least half a window of context)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Windows:
    ids: np.ndarray  # [n_windows, n_ctx] int32
    first: int  # first logit position that is scored
    bos_id: int | None

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
        return h.hexdigest()

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=self.ids, first=self.first, bos_id=-1 if self.bos_id is None else self.bos_id)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Windows":
        with np.load(path) as z:
            bos = int(z["bos_id"])
            return cls(z["ids"].astype(np.int32), int(z["first"]), None if bos < 0 else bos)


def build_windows(
    tokens: list[int] | np.ndarray,
    n_ctx: int = 512,
    score_from: float = 0.5,
    max_windows: int | None = None,
    bos_id: int | None = None,
) -> Windows:
    """Cut `tokens` into windows (see module docstring)."""
    if n_ctx < 4:
        raise ValueError("n_ctx must be at least 4")
    if not 0.0 <= score_from < 1.0:
        raise ValueError("score_from must be in [0, 1)")
    toks = np.asarray(tokens, dtype=np.int32)
    n = len(toks) // n_ctx
    if max_windows is not None:
        n = min(n, max_windows)
    if n == 0:
        raise ValueError(f"the text has {len(toks)} tokens, fewer than one window of {n_ctx}")
    ids = toks[: n * n_ctx].reshape(n, n_ctx).copy()
    if bos_id is not None:
        ids[:, 0] = bos_id
    first = min(int(n_ctx * score_from), n_ctx - 2)
    return Windows(ids, first, bos_id)
