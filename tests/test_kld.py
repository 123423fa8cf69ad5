import numpy as np

from evaluators.kld import TopK, kld_topk, log_softmax, summarize, top1_agree


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


def test_summary():
    s = summarize(np.arange(101, dtype=float))
    assert s["mean"] == 50 and s["median"] == 50 and s["max"] == 100 and abs(s["p99"] - 99) < 1e-9
