"""Running quantcompare as a user would, and checking that it ended cleanly."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--windows", "2", "--n-ctx", "128", "--speed-repeats", "1", "--decode-tokens", "4", "--prefill-tokens", "32",
        "--tasks", "none", "--awq-calib-samples", "8", "--awq-calib-seq-len", "64", "--gen-prompts", "2", "--gen-tokens", "8",
        "--long-ctx", "512", "--instructions", "2", "--instruct-tokens", "8"]


def env_for(tmp: Path, **extra) -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(tmp / "store"), PYTHONUNBUFFERED="1")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def qc(args: list[str], tmp: Path, timeout: int = 900, preexec=None, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env_for(tmp, **extra), timeout=timeout, preexec_fn=preexec)


def compare(model: Path, out: Path, tmp: Path, *extra: str, **env) -> subprocess.CompletedProcess:
    return qc(["compare", "--model", str(model), "--out", str(out), *FAST, *extra], tmp, **env)


def earlier_run(tmp: Path) -> Path:
    out = tmp / "run"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"earlier": True}))
    return out


def assert_clean(p: subprocess.CompletedProcess, needle: str, code: int = 2, out: Path | None = None) -> str:
    """One line on stderr naming the problem, the exit code, no traceback, an earlier result untouched."""
    assert p.returncode == code, (p.returncode, p.stdout[-1500:], p.stderr[-1500:])
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert needle in lines[0], lines[0]
    if out is not None:
        assert json.loads((out / "results.json").read_text()) == {"earlier": True}
    return lines[0]


def private_copy(model: Path, tmp: Path, name: str = "model") -> Path:
    """A copy of a session model that a test may damage."""
    dst = tmp / name
    shutil.copytree(model, dst)
    return dst


def as_foreground_job() -> None:
    """preexec_fn: Ctrl-C at its default and not blocked, as in a shell's foreground job. A test run started in the
    background (`make test &`) inherits SIGINT ignored, and a pytest worker that ran a Ray test in-process may hand
    its children SIGINT blocked; either way the interrupted run would go on to the end and exit 0 (the SIGINT
    tests' flakes)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def start(args: list[str], tmp: Path, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_for(tmp, **extra), start_new_session=True,
                            preexec_fn=as_foreground_job)


def wait_for(proc: subprocess.Popen, needle: str, timeout: float = 600) -> str:
    """Read the run's output until a line holds `needle`; return what was read."""
    seen = []
    t0 = time.time()
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    proc.kill()
    raise AssertionError(f"'{needle}' never came: {''.join(seen)[-2000:]}")


def interrupt(proc: subprocess.Popen, sig: int) -> int:
    """Ctrl-C reaches the whole foreground group; a kill -9 of the harness reaches only the harness."""
    if sig == signal.SIGINT:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        masks = {l.split(":")[0]: int(l.split()[1], 16) for l in status.splitlines() if l.startswith(("SigBlk", "SigIgn"))}
        assert not any(m & (1 << (signal.SIGINT - 1)) for m in masks.values()), f"the run cannot see Ctrl-C: {masks}"
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, sig)
    return proc.wait(timeout=120)
