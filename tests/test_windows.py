import numpy as np
import pytest

from evaluators.windows import Windows, build_windows


def test_windows_cut_consecutive_non_overlapping():
    toks = np.arange(1000)
    w = build_windows(toks, n_ctx=100)
    assert w.n_windows == 10 and w.n_ctx == 100
    assert (w.ids[3] == np.arange(300, 400)).all()
    assert w.first == 50
    # logits at 50..98 score tokens 51..99: 49 tokens, as llama-perplexity
    assert w.scored_per_window == 49
    assert (w.targets(3) == np.arange(351, 400)).all()


def test_windows_limit_bos_and_score_from():
    w = build_windows(np.arange(5, 1005), n_ctx=200, score_from=0.25, max_windows=3, bos_id=1)
    assert w.n_windows == 3
    assert (w.ids[:, 0] == 1).all() and w.ids[1, 1] == 206
    assert w.first == 50 and w.scored_per_window == 149


def test_too_short_text_is_an_error():
    with pytest.raises(ValueError, match="fewer than one window"):
        build_windows(np.arange(10), n_ctx=64)


def test_roundtrip_and_hash(tmp_path):
    w = build_windows(np.arange(2048), n_ctx=512, bos_id=None)
    w.save(tmp_path / "w.npz")
    w2 = Windows.load(tmp_path / "w.npz")
    assert (w2.ids == w.ids).all() and w2.first == w.first and w2.bos_id is None
    assert w2.sha256() == w.sha256()
    assert build_windows(np.arange(2048), n_ctx=512, bos_id=0).sha256() != w.sha256()
