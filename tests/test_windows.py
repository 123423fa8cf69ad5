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


def test_spread_choice_is_seeded_sorted_and_on_the_same_chunk_boundaries():
    toks = np.arange(100 * 64)
    a = build_windows(toks, n_ctx=64, max_windows=10, choice="spread", seed=3)
    b = build_windows(toks, n_ctx=64, max_windows=10, choice="spread", seed=3)
    c = build_windows(toks, n_ctx=64, max_windows=10, choice="spread", seed=4)
    assert (a.positions == b.positions).all() and (a.positions != c.positions).any()
    assert (np.diff(a.positions) > 0).all() and a.positions.max() > 50  # spread over the text, in text order
    for i, p in enumerate(a.positions):
        assert (a.ids[i] == np.arange(p * 64, (p + 1) * 64)).all()  # llama-perplexity's chunks, chosen
    assert a.sha256() != c.sha256()
    first = build_windows(toks, n_ctx=64, max_windows=10, choice="first")
    assert (first.positions == np.arange(10)).all()


def test_windows_are_clustered_by_article():
    from evaluators.windows import article_starts, window_clusters

    text = " = A = \n\n aaa \n = = Sec = = \n bbb \n = B = \n ccc \n"
    starts = article_starts(text)
    assert len(starts) == 2 and text[starts[1]:].startswith(" = B")
    token_starts = list(range(len(text)))  # one token per character
    clusters, kind = window_clusters(np.array([0, 1, 4]), first=2, n_ctx=8, token_starts=token_starts, starts=starts)
    assert kind == "article" and clusters[0] == 0 and clusters[2] == 1
    blocks, kind = window_clusters(np.array([0, 7, 8, 17]), 2, 8, None, [])
    assert blocks == [0, 0, 1, 2] and kind.startswith("block")
