import numpy as np

from evaluators.kld import SparseLogprobs, TopK, kld_sparse, kld_topk, log_softmax, top1_agree, top1_agree_sparse


def _direct_kld(p_logits, q_logits):
    p = np.exp(log_softmax(p_logits))
    return (p * (log_softmax(p_logits) - log_softmax(q_logits))).sum(-1)


def test_log_softmax_normalizes():
    x = np.random.default_rng(0).normal(size=(5, 50)) * 10
    assert np.allclose(np.exp(log_softmax(x)).sum(-1), 1.0)


def test_full_topk_equals_direct_kld():
    rng = np.random.default_rng(1)
    p, q = rng.normal(size=(64, 300)) * 3, rng.normal(size=(64, 300)) * 3
    ref = TopK.from_logprobs(log_softmax(p), k=300)
    assert np.allclose(kld_topk(ref, log_softmax(q)), _direct_kld(p, q), rtol=1e-6, atol=1e-9)


def test_partial_topk_is_a_tight_lower_bound():
    rng = np.random.default_rng(2)
    p = rng.normal(size=(128, 1000)) * 4
    q = p + rng.normal(size=p.shape) * 0.3
    exact = _direct_kld(p, q)
    approx = kld_topk(TopK.from_logprobs(log_softmax(p), k=64), log_softmax(q))
    assert (approx <= exact + 1e-9).all()
    assert approx.mean() > 0.5 * exact.mean()


def test_identical_distributions_have_zero_kld_and_full_agreement():
    x = np.random.default_rng(3).normal(size=(10, 40))
    ref = TopK.from_logprobs(log_softmax(x), k=8)
    assert np.allclose(kld_topk(ref, log_softmax(x)), 0.0, atol=1e-9)
    assert top1_agree(ref, log_softmax(x)).mean() == 1.0


def test_topk_sorted_and_top1_disagreement():
    lp = log_softmax(np.array([[0.0, 3.0, 1.0, 2.0]]))
    ref = TopK.from_logprobs(lp, k=3)
    assert ref.ids.tolist() == [[1, 3, 2]]
    other = log_softmax(np.array([[0.0, 1.0, 1.0, 5.0]]))
    assert top1_agree(ref, other).tolist() == [0.0]


def _sparse(logits, k, targets=None):
    lp = log_softmax(logits)
    top = TopK.from_logprobs(lp, k)
    tl = lp[np.arange(len(lp)), targets] if targets is not None else lp[:, 0]
    return SparseLogprobs(tl, top.ids.astype(np.int64), top.logp.astype(np.float64))


def test_sparse_kld_full_lists_equal_direct_kld():
    rng = np.random.default_rng(4)
    p, q = rng.normal(size=(32, 200)) * 3, rng.normal(size=(32, 200)) * 3
    ref = TopK.from_logprobs(log_softmax(p), k=200)
    assert np.allclose(kld_sparse(ref, _sparse(q, 200)), _direct_kld(p, q), rtol=1e-6, atol=1e-9)


def test_sparse_kld_is_a_lower_bound_and_close_for_peaked_models():
    rng = np.random.default_rng(5)
    p = rng.normal(size=(128, 2000)) * 5
    q = p + rng.normal(size=p.shape) * 0.3
    exact = _direct_kld(p, q)
    approx = kld_sparse(TopK.from_logprobs(log_softmax(p), k=256), _sparse(q, 20))
    assert (approx <= exact + 1e-9).all()
    assert approx.mean() > 0.3 * exact.mean()
    assert np.allclose(kld_sparse(TopK.from_logprobs(log_softmax(p), 256), _sparse(p, 20)), 0.0, atol=1e-9)


def test_sparse_top1():
    p = np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    q = np.array([[0.0, 3.0, 4.0], [2.0, 0.0, 1.0]])
    ref = TopK.from_logprobs(log_softmax(p), 2)
    assert top1_agree_sparse(ref, _sparse(q, 2)).tolist() == [0.0, 1.0]


def test_row_logprobs_match_float64_log_softmax():
    from evaluators.kld import RowLogprobs

    rng = np.random.default_rng(7)
    logits = (rng.normal(size=(40, 3000)) * 6 + 20).astype(np.float32)
    rows = RowLogprobs.from_logits(logits)
    full = log_softmax(logits)
    tgt = rng.integers(0, 3000, size=40)
    assert np.allclose(rows.at(tgt), full[np.arange(40), tgt], atol=1e-6)
    top = TopK.from_rows(rows, 50)
    ref = TopK.from_logprobs(full, 50)
    assert (top.ids == ref.ids).all() and np.allclose(top.logp, ref.logp, atol=1e-5)
    assert (TopK.from_rows(rows, 1).ids[:, 0] == full.argmax(-1)).all()
    q = (logits + rng.normal(size=logits.shape).astype(np.float32))
    assert np.allclose(kld_topk(ref, RowLogprobs.from_logits(q)), kld_topk(ref, log_softmax(q)), atol=1e-6)
    assert (top1_agree(ref, RowLogprobs.from_logits(q)) == top1_agree(ref, log_softmax(q))).all()


def test_whole_vocabulary_reference_is_exact():
    from evaluators.kld import RowLogprobs

    rng = np.random.default_rng(11)
    p, q = (rng.normal(size=(30, 400)) * 3).astype(np.float32), (rng.normal(size=(30, 400)) * 3).astype(np.float32)
    full = TopK.whole(RowLogprobs.from_logits(p))
    assert full.ids is None and full.logp.shape == (30, 400)
    assert np.allclose(kld_topk(full, RowLogprobs.from_logits(q)), _direct_kld(p, q), rtol=1e-4, atol=1e-6)
    assert (top1_agree(full, log_softmax(q)) == (p.argmax(-1) == q.argmax(-1))).all()
    sp = _sparse(q, 400)
    assert np.allclose(kld_sparse(full, sp), _direct_kld(p, q), rtol=1e-4, atol=1e-6)
    assert (top1_agree_sparse(full, _sparse(q, 5)) == (p.argmax(-1) == q.argmax(-1))).all()
