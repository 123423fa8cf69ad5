"""KL divergence and top-1 agreement of a variant against the FP16 reference, window by window.

Memory and disk stay bounded: the reference keeps, per scored position, only its top-k token ids
and log-probabilities. The variant's full distribution is at hand when it is scored, so the
divergence is taken over k+1 outcomes: the reference's top-k tokens, and "all other tokens" as one
bucket. With k = vocabulary size this is the exact KL divergence; with smaller k it is a lower
bound (merging outcomes never increases KL) that is tight when the reference's tail mass is small.
Top-1 agreement is exact for any k >= 1."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TINY = 1e-30


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64, copy=False)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@dataclass
class TopK:
    """The reference's top-k per scored position of one window."""

    ids: np.ndarray  # [n, k] int32, sorted by probability, descending
    logp: np.ndarray  # [n, k] float32

    @classmethod
    def from_logprobs(cls, logp: np.ndarray, k: int) -> "TopK":
        k = min(k, logp.shape[-1])
        part = np.argpartition(-logp, k - 1, axis=-1)[:, :k]
        vals = np.take_along_axis(logp, part, axis=-1)
        order = np.argsort(-vals, axis=-1, kind="stable")
        return cls(np.take_along_axis(part, order, axis=-1).astype(np.int32),
                   np.take_along_axis(vals, order, axis=-1).astype(np.float32))


def kld_topk(ref: TopK, variant_logp: np.ndarray) -> np.ndarray:
    """Per-position KL(reference || variant) over the reference's top-k plus the rest bucket."""
    p_logp = ref.logp.astype(np.float64)
    q_logp = np.take_along_axis(variant_logp, ref.ids.astype(np.int64), axis=-1).astype(np.float64)
    p = np.exp(p_logp)
    kl = (p * (p_logp - q_logp)).sum(axis=-1)
    p_rest = np.clip(1.0 - p.sum(axis=-1), 0.0, 1.0)
    q_rest = np.clip(1.0 - np.exp(q_logp).sum(axis=-1), _TINY, 1.0)
    has_rest = p_rest > 1e-12
    kl = kl + np.where(has_rest, p_rest * (np.log(np.maximum(p_rest, _TINY)) - np.log(q_rest)), 0.0)
    return np.maximum(kl, 0.0)


def top1_agree(ref: TopK, variant_logp: np.ndarray) -> np.ndarray:
    return (variant_logp.argmax(axis=-1) == ref.ids[:, 0]).astype(np.float64)


def summarize(kld_values: np.ndarray) -> dict[str, float]:
    v = np.asarray(kld_values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }


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
    match = var.ids[:, :, None] == ref.ids[:, None, :].astype(np.int64)  # [n, k, K]
    in_ref = match.any(axis=-1)  # [n, k]
    p_logp = np.where(in_ref, (match * ref.logp[:, None, :].astype(np.float64)).sum(axis=-1), 0.0)
    q_logp = var.logp.astype(np.float64)
    p = np.where(in_ref, np.exp(p_logp), 0.0)
    q = np.where(in_ref, np.exp(q_logp), 0.0)
    kl = np.where(in_ref, p * (p_logp - q_logp), 0.0).sum(axis=-1)
    p_rest = np.clip(1.0 - p.sum(axis=-1), 0.0, 1.0)
    q_rest = np.clip(1.0 - q.sum(axis=-1), _TINY, 1.0)
    kl = kl + np.where(p_rest > 1e-12, p_rest * (np.log(np.maximum(p_rest, _TINY)) - np.log(q_rest)), 0.0)
    return np.maximum(kl, 0.0)


def top1_agree_sparse(ref: TopK, var: SparseLogprobs) -> np.ndarray:
    return (var.ids[:, 0] == ref.ids[:, 0]).astype(np.float64)
