"""KL divergence and top-1 agreement of a variant against the FP16 reference, window by window.

Memory and disk stay bounded: the reference keeps, per scored position, only its top-k token ids
and log-probabilities. The variant's full distribution is at hand when it is scored, so the
divergence is taken over k+1 outcomes: the reference's top-k tokens, and "all other tokens" as one
bucket. With k = vocabulary size this is the exact KL divergence; with smaller k it is a lower
bound (merging outcomes never increases KL) that is tight when the reference's tail mass is small.
Top-1 agreement is exact for any k >= 1."""
from __future__ import annotations

from dataclasses import dataclass

import os

import numpy as np

_TINY = 1e-30


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64, copy=False)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


LSE_THREADS = min(8, os.cpu_count() or 1)  # each chunk's arithmetic is the same whichever thread does it


def logsumexp_rows(logits: np.ndarray, chunk: int = 16) -> np.ndarray:
    """float64 log-normalizer of each row of float32 logits, a few rows at a time (cache-sized, no
    [n, vocab] float64 copy): exp in float32 after subtracting the row max, sums in float64."""
    out = np.empty(logits.shape[0], dtype=np.float64)

    def block(s: int) -> None:
        b = logits[s:s + chunk]
        m = b.max(axis=-1, keepdims=True)
        out[s:s + chunk] = m[:, 0].astype(np.float64) + np.log(np.exp(b - m).sum(axis=-1, dtype=np.float64))

    starts = range(0, logits.shape[0], chunk)
    workers = min(LSE_THREADS, len(starts))
    if workers > 1 and logits.size >= 1 << 22:  # numpy releases the GIL in exp and sum: the same chunks, in threads
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(block, starts))
    else:
        for s in starts:
            block(s)
    return out


@dataclass
class RowLogprobs:
    """Log-probabilities of a block of positions, kept as the runtime's logits plus each row's
    log-normalizer: log p(t | row i) = logits[i, t] - lse[i]. Only the entries asked for are
    ever materialized in float64."""

    logits: np.ndarray  # [n, vocab], float32 as the runtime returned them (or log-probs with lse 0)
    lse: np.ndarray  # [n] float64
    top: "TopK | None" = None  # the rows' top-k, where the runtime computed it beside the logits (on a GPU)

    def rows(self, a: int, b: int) -> "RowLogprobs":
        """Positions a .. b-1."""
        top = None if self.top is None else TopK(self.top.ids[a:b], self.top.logp[a:b])
        return RowLogprobs(self.logits[a:b], self.lse[a:b], top)

    @classmethod
    def from_logits(cls, logits: np.ndarray) -> "RowLogprobs":
        x = np.asarray(logits)
        if x.dtype != np.float32 and x.dtype != np.float64:
            x = x.astype(np.float32)
        return cls(x, logsumexp_rows(x))

    @property
    def vocab(self) -> int:
        return int(self.logits.shape[-1])

    def at(self, ids: np.ndarray) -> np.ndarray:
        """log p of the given token ids: ids [n] -> [n], ids [n, k] -> [n, k] (float64)."""
        ids = np.asarray(ids, dtype=np.int64)
        flat = ids.ndim == 1
        got = np.take_along_axis(self.logits, ids[:, None] if flat else ids, axis=-1).astype(np.float64)
        got -= self.lse[:, None]
        return got[:, 0] if flat else got

    def argmax(self) -> np.ndarray:
        return self.logits.argmax(axis=-1)


def as_rows(x: "RowLogprobs | np.ndarray") -> RowLogprobs:
    """Accept full log-probability arrays too (their normalizer is 0)."""
    return x if isinstance(x, RowLogprobs) else RowLogprobs(np.asarray(x), np.zeros(np.asarray(x).shape[0]))


@dataclass
class TopK:
    """The reference's top-k per scored position of one window; with ids None, its whole
    distribution (logp [n, vocab]): the divergence is then exact, as llama-perplexity's."""

    ids: np.ndarray | None  # [n, k] int32, sorted by probability, descending; None: every token, in id order
    logp: np.ndarray  # [n, k] (or [n, vocab]) float32

    @property
    def top1(self) -> np.ndarray:
        return self.logp.argmax(axis=-1) if self.ids is None else self.ids[:, 0]

    @classmethod
    def from_logprobs(cls, logp: np.ndarray, k: int) -> "TopK":
        return cls.from_rows(as_rows(logp), k)

    @classmethod
    def whole(cls, rows: RowLogprobs) -> "TopK":
        """The whole distribution (ids None): KLD against it is exact."""
        return cls(None, (rows.logits - rows.lse[:, None]).astype(np.float32))

    @classmethod
    def from_rows(cls, rows: RowLogprobs, k: int) -> "TopK":
        """Top-k straight from the logits (same order as the log-probs), normalized afterwards."""
        k = min(k, rows.vocab)
        if rows.top is not None and rows.top.ids is not None and rows.top.ids.shape[1] >= k:
            return cls(rows.top.ids[:, :k], rows.top.logp[:, :k])
        if k == 1:
            ids = rows.argmax()[:, None]
        else:
            part = np.argpartition(-rows.logits, k - 1, axis=-1)[:, :k]
            vals = np.take_along_axis(rows.logits, part, axis=-1)
            ids = np.take_along_axis(part, np.argsort(-vals, axis=-1, kind="stable"), axis=-1)
        return cls(ids.astype(np.int32), rows.at(ids).astype(np.float32))


def kld_topk(ref: TopK, variant: "RowLogprobs | np.ndarray") -> np.ndarray:
    """Per-position KL(reference || variant) over the reference's top-k plus the rest bucket."""
    p_logp = ref.logp.astype(np.float64)
    var = as_rows(variant)
    if ref.ids is None:  # whole vocabulary: exact
        q_logp = var.logits.astype(np.float64) - var.lse[:, None]
        return np.maximum((np.exp(p_logp) * (p_logp - q_logp)).sum(axis=-1), 0.0)
    q_logp = var.at(ref.ids)
    p = np.exp(p_logp)
    kl = (p * (p_logp - q_logp)).sum(axis=-1)
    p_rest = np.clip(1.0 - p.sum(axis=-1), 0.0, 1.0)
    q_rest = np.clip(1.0 - np.exp(q_logp).sum(axis=-1), _TINY, 1.0)
    has_rest = p_rest > 1e-12
    kl = kl + np.where(has_rest, p_rest * (np.log(np.maximum(p_rest, _TINY)) - np.log(q_rest)), 0.0)
    return np.maximum(kl, 0.0)


def top1_agree(ref: TopK, variant: "RowLogprobs | np.ndarray") -> np.ndarray:
    return (as_rows(variant).argmax() == ref.top1).astype(np.float64)


@dataclass
class SparseLogprobs:
    """What a runtime without full logits returns per scored position (e.g. vLLM's prompt_logprobs):
    the log-probability of the actual next token, and its own top-k tokens."""

    target_logp: np.ndarray  # [n] float64
    ids: np.ndarray  # [n, k] int64, descending
    logp: np.ndarray  # [n, k] float64


def kld_sparse(ref: TopK, var: SparseLogprobs) -> np.ndarray:
    """Per-position KL(reference || variant) when the variant gives only its top-k.

    Outcomes: each token in both the variant's top-k and the reference's top-K (both probabilities
    known exactly), and one bucket for all other tokens. Merging outcomes never increases KL, so
    this is a lower bound of the full-vocabulary KL; it is exact when both top lists cover the
    vocabulary, and close when the variant's top-k holds nearly all of the reference's mass."""
    # an engine pads a short top-k list with id -1 and log-prob -inf (vLLM): those entries are no outcome
    valid = (var.ids >= 0) & np.isfinite(var.logp)
    if ref.ids is None:  # the reference's probability of each of the variant's tokens is known
        p_at = np.take_along_axis(ref.logp, np.where(valid, var.ids, 0), axis=-1).astype(np.float64)
        ref = TopK(np.where(valid, var.ids, -1).astype(np.int32), np.where(valid, p_at, -np.inf).astype(np.float32))
    match = (var.ids[:, :, None] == ref.ids[:, None, :].astype(np.int64)) & valid[:, :, None]  # [n, k, K]
    in_ref = match.any(axis=-1)  # [n, k]
    ref_logp = np.where(np.isfinite(ref.logp), ref.logp, -1e30).astype(np.float64)  # exp() of it is 0, times 0 is 0
    p_logp = np.where(in_ref, np.where(match, ref_logp[:, None, :], 0.0).sum(axis=-1), 0.0)
    q_logp = np.where(valid, var.logp, 0.0).astype(np.float64)
    p = np.where(in_ref, np.exp(p_logp), 0.0)
    q = np.where(in_ref, np.exp(q_logp), 0.0)
    kl = np.where(in_ref, p * (p_logp - q_logp), 0.0).sum(axis=-1)
    p_rest = np.clip(1.0 - p.sum(axis=-1), 0.0, 1.0)
    q_rest = np.clip(1.0 - q.sum(axis=-1), _TINY, 1.0)
    kl = kl + np.where(p_rest > 1e-12, p_rest * (np.log(np.maximum(p_rest, _TINY)) - np.log(q_rest)), 0.0)
    return np.maximum(kl, 0.0)


def top1_agree_sparse(ref: TopK, var: SparseLogprobs) -> np.ndarray:
    return (var.ids[:, 0] == ref.top1).astype(np.float64)


def rows_on_gpu(logits, top_k: int = 0, device: str = "cuda") -> RowLogprobs:
    """RowLogprobs of logits (a torch tensor on the GPU, or an array) with the log-normalizers and the top-k
    computed on the GPU: on a GPU host these row reductions over a 100k+ vocabulary would otherwise leave the
    GPU idle while one CPU core works (0.15 s per 511 rows for the normalizers, 0.8 s for a top-256)."""
    import torch

    with torch.inference_mode():
        x = logits if isinstance(logits, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(logits))
        x = x.to(device).float()
        lse = torch.logsumexp(x, dim=-1).double()
        top = None
        if top_k > 0:
            vals, ids = torch.topk(x, min(top_k, x.shape[-1]), dim=-1, sorted=True)
            top = TopK(ids.int().cpu().numpy(), (vals.double() - lse[:, None]).float().cpu().numpy())
        return RowLogprobs(x.cpu().numpy(), lse.cpu().numpy(), top)
