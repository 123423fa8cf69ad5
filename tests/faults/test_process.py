"""Interrupted and concurrent runs: a re-run resumes, reusing what was finished and never what was half
written; one run per output folder; a crashing cell fails alone."""
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.faults.helpers import FAST, assert_clean, compare, interrupt, qc, start, wait_for


def _args(model, out, *variants):
    return ["compare", "--model", str(model), "--out", str(out), *FAST, "--variants", ",".join(variants)]


def _no_partials(tmp_path):
    return not list((tmp_path / "store" / "artifacts").glob(".*partial*"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_quantization_resumes(tmp_path, tiny_llama, sig):
    out = tmp_path / "run"
    proc = start(_args(tiny_llama, out, "fp16", "awq-int4"), tmp_path)
    wait_for(proc, "[awq-int4] building")
    rc = interrupt(proc, sig)
    assert rc == (130 if sig == signal.SIGINT else -9)
    if sig == signal.SIGINT:
        assert "interrupted" in proc.stderr.read() and _no_partials(tmp_path)
    p = compare(tiny_llama, out, tmp_path, "--variants", "fp16,awq-int4")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "[fp16] cached artifact reused" in p.stdout and "[awq-int4] building" in p.stdout
    assert _no_partials(tmp_path)
    if sig == signal.SIGKILL:
        assert "taking over a stale lock" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_evaluation_resumes(tmp_path, tiny_llama, sig):
    out = tmp_path / "run"
    more = ["--windows", "60", "--speed-repeats", "3"]  # a cell long enough to be caught running (a few seconds)
    proc = start(_args(tiny_llama, out, "fp16", "gguf-f16") + more, tmp_path)
    wait_for(proc, "[gguf-f16 × llama.cpp] window")
    interrupt(proc, sig)
    p = compare(tiny_llama, out, tmp_path, "--variants", "fp16,gguf-f16", *more)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "[eval] fp16 × transformers: cached result reused" in p.stdout
    assert "[eval] gguf-f16 × llama.cpp: 128-token windows" in p.stdout  # the half-done cell runs again
    assert json.loads((out / "results.json").read_text())["cells"][1]["status"] == "ok"


@pytest.mark.slow
def test_two_runs_on_one_folder(tmp_path, tiny_llama):
    out = tmp_path / "run"
    proc = start(_args(tiny_llama, out, "fp16", "awq-int4"), tmp_path)
    wait_for(proc, "[awq-int4] building")
    from tests.faults.helpers import qc

    second = qc(_args(tiny_llama, out, "fp16"), tmp_path)
    interrupt(proc, signal.SIGINT)
    assert_clean(second, f"is in use by another run (pid {proc.pid}")


@pytest.mark.slow
def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path, tiny_llama):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".quantcompare.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                        "started": "earlier"}))
    p = compare(tiny_llama, out, tmp_path, "--variants", "fp16")
    assert p.returncode == 0 and "taking over a stale lock" in p.stdout
    assert not (out / ".quantcompare.lock").exists()


@pytest.mark.slow
@pytest.mark.parametrize("how,why", [("kill", "killed by signal 9 (out of memory?)"), ("raise", "MemoryError")])
def test_a_crashing_cell_fails_alone(tmp_path, tiny_llama, how, why):
    out = tmp_path / "run"
    p = compare(tiny_llama, out, tmp_path, "--variants", "fp16,gguf-f16,gguf-q8_0",
                QC_FAULT_CELL=f"gguf-f16|llama.cpp|{how}")
    assert p.returncode == 1, p.stderr[-2000:]
    r = json.loads((out / "results.json").read_text())
    status = {(c["variant"], c["runtime"]): c for c in r["cells"]}
    assert status[("gguf-f16", "llama.cpp")]["status"] == "failed" and why in status[("gguf-f16", "llama.cpp")]["error"]
    assert status[("gguf-q8_0", "llama.cpp")]["status"] == "ok" and status[("fp16", "transformers")]["status"] == "ok"
    assert "FAILED" in p.stdout and why in (out / "report.html").read_text()


@pytest.mark.slow
def test_missing_tool_environment_names_the_make_target(tmp_path, tiny_llama):
    out = tmp_path / "run"
    p = compare(tiny_llama, out, tmp_path, "--variants", "fp16,awq-int4", QC_VENVS_DIR=tmp_path / "no-venvs")
    assert_clean(p, "`make setup`")


@pytest.mark.slow
def test_broken_tool_environment_names_the_make_target(tmp_path, tiny_llama):
    env = tmp_path / "venvs" / "autoawq"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    os.chmod(env / "bin" / "python", 0o755)
    (env / ".installed").write_text("1\n")
    p = compare(tiny_llama, tmp_path / "run", tmp_path, "--variants", "fp16,awq-int4", QC_VENVS_DIR=tmp_path / "venvs")
    assert_clean(p, "environment is broken; run `make setup`")


@pytest.mark.slow
def test_a_variant_with_non_finite_logits_is_broken_and_the_run_goes_on(tmp_path, tiny_llama):
    out = tmp_path / "run"
    p = compare(tiny_llama, out, tmp_path, "--variants", "fp16,gguf-f16,gguf-q8_0",
                QC_FAULT_CELL="gguf-q8_0|llama.cpp|nan")
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    r = json.loads((out / "results.json").read_text())
    status = {(c["variant"], c["runtime"]): c["status"] for c in r["cells"]}
    assert status[("gguf-q8_0", "llama.cpp")] == "broken"
    assert status[("fp16", "transformers")] == "ok" and status[("gguf-f16", "llama.cpp")] == "ok"
    flag = next(f for f in r["flags"] if f["variant"] == "gguf-q8_0" and "not finite" in f["message"])
    assert flag["level"] == "broken" and "BROKEN" in p.stdout
    # NaN logits from each call's second row on: each such position counted once, never more than were scored
    import re

    x, y = (int(g.replace(",", "")) for g in re.search(r"at ([\d,]+) of ([\d,]+) scored", flag["message"]).groups())
    assert x <= y == r["windows"]["scored_tokens"] and x > y // 2, flag["message"]
    assert (out / "results.csv").is_file() and "not finite" in (out / "report.html").read_text()
    g = qc(["gate", str(out / "results.json")], tmp_path)
    verdict = json.loads((out / "verdict.json").read_text())
    assert g.returncode == 1 and verdict["variants"]["gguf-q8_0"] == "fail"
