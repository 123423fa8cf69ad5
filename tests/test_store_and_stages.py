"""The shared store (ls, prune, atomic entries), the stage table and progress with a time estimate."""
import io
import os
import time

from harness import store
from harness.console import Console
from harness.stages import StageClock, summary


def test_store_entries_and_prune(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("QC_STORE_DIR", str(tmp_path / "s"))
    old = store.artifact_slot("gguf-q8_0", "a" * 64)
    old.mkdir(parents=True)
    (old / "model.gguf").write_bytes(b"x" * 1000)
    new = store.cell_file("b" * 64)
    store.write_json(new, {"key": "b" * 64})
    past = time.time() - 10 * 86400
    os.utime(old, (past, past))
    assert {e.kind for e in store.entries()} == {"artifacts", "cells"}
    assert main(["cache", "ls"]) == 0 and "2 entries" in capsys.readouterr().out
    assert main(["cache", "prune"]) == 2  # needs a criterion
    assert main(["cache", "prune", "--older-than", "5"]) == 0
    assert not old.exists() and new.exists()
    assert main(["cache", "prune", "--all"]) == 0 and store.entries() == []


def test_link_into_run_replaces_an_old_folder(tmp_path):
    target = tmp_path / "store" / "x"
    target.mkdir(parents=True)
    link = tmp_path / "run" / "artifacts" / "fp16"
    link.mkdir(parents=True)
    (link / "stale").write_text("old layout")
    store.link_into_run(target, link)
    assert link.is_symlink() and link.resolve() == target.resolve()


def test_stage_summary_adds_up_without_installs():
    c = StageClock()
    c.add("install .venv", "install", 700.0)
    c.add("build fp16", "build", 2.0)
    c.add("evaluate fp16 × transformers", "cell", 0.1, cached=True)
    text = summary(c.as_list())
    assert "cached" in text and text.splitlines()[-1].split()[-1] == "2.1"


def test_progress_estimates_time_left_and_throttles_on_a_pipe(monkeypatch):
    out = io.StringIO()
    con = Console(out)
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    con.progress("[awq] layer 1/30")
    clock[0] += 10
    con.progress("[awq] layer 2/30")  # 10 s per layer after the first: 28 left -> 4m40s
    clock[0] += 20
    con.progress("[awq] layer 3/30")
    text = out.getvalue()
    assert "layer 1/30" in text and "layer 2/30" not in text  # throttled: under 15 s since the last line
    assert "layer 3/30, ~" in text and "left" in text
    clock[0] += 1
    con.progress("[awq] layer 30/30")  # completion always shows
    assert "layer 30/30" in out.getvalue()
