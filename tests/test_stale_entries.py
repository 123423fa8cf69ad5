"""What a dead node or an old gate leaves behind: another host's partial store entry untouched for a day is removed
(this host's are removed when their process is gone), and a summary page never shows a gate verdict older than the
results beside it."""
import json
import os
import time

from harness import store


def test_another_hosts_partial_entry_is_removed_once_stale_and_kept_while_fresh(tmp_path):
    folder = tmp_path / "artifacts" / "awq-int4-abc"
    folder.parent.mkdir(parents=True)
    old = folder.with_name(f".{folder.name}.partial-deadnode-4242-0a1b2c3d")
    fresh = folder.with_name(f".{folder.name}.partial-busynode-4343-0a1b2c3e")
    for p in (old, fresh):
        (p / "model").mkdir(parents=True)
        (p / "model" / "part.safetensors").write_bytes(b"x")
    past = time.time() - store.STALE_PARTIAL_S - 60
    for f in (old, old / "model", old / "model" / "part.safetensors"):
        os.utime(f, (past, past))
    store.remove_stale_partials(folder)
    assert not old.exists() and fresh.exists()


def test_the_summary_ignores_a_verdict_older_than_its_results(tmp_path, monkeypatch):
    from harness import multi_model
    from harness.gate import preview

    (tmp_path / "results.json").write_text(json.dumps({"created_at": "2026-12-07T10:00:00Z"}))
    (tmp_path / "verdict.json").write_text(json.dumps({"variants": {"gguf-q4_k_m": "pass"},
                                                       "results": {"created_at": "2026-12-01T10:00:00Z"}}))
    monkeypatch.setattr(preview, "default_ship", lambda results: {"variants": {"gguf-q4_k_m": "fail"}})
    assert multi_model._verdicts(tmp_path) == ("default policy preview", {"gguf-q4_k_m": "FAIL"})
    (tmp_path / "verdict.json").write_text(json.dumps({"variants": {"gguf-q4_k_m": "pass"},
                                                       "results": {"created_at": "2026-12-07T10:00:00Z"}}))
    assert multi_model._verdicts(tmp_path) == ("gate", {"gguf-q4_k_m": "PASS"})
