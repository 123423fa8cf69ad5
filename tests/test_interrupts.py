"""Ctrl-C is never lost: when the KeyboardInterrupt it raised was swallowed (here, inside a finalizer, which Python
reports as "Exception ignored"), the next checkpoint still ends the run as interrupted."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.faults.helpers import as_foreground_job

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import sys, time
    from core import interrupts
    interrupts.install()

    class Slow:
        def __del__(self):
            print("in finalizer", flush=True)
            time.sleep(float(sys.argv[1]))  # Ctrl-C arrives here: its KeyboardInterrupt is swallowed by the interpreter

    Slow()  # dropped at once: __del__ runs now
    print("after finalizer", flush=True)
    try:
        interrupts.check()
    except KeyboardInterrupt:
        print("checkpoint saw the interrupt", flush=True)
        sys.exit(130)
    sys.exit(0)
""")


def _run(ignored: bool = False) -> tuple[int, str, str]:
    # explicit either way: a test run started in the background inherits Ctrl-C ignored
    pre = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else as_foreground_job
    p = subprocess.Popen([sys.executable, "-c", CHILD, "2" if ignored else "30"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=pre)
    assert p.stdout.readline().strip() == "in finalizer"
    os.kill(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


def test_a_swallowed_ctrl_c_is_seen_at_the_next_checkpoint():
    rc, out, err = _run()
    assert "Exception ignored" in err and "KeyboardInterrupt" in err  # the interpreter dropped it...
    assert "after finalizer" in out and "checkpoint saw the interrupt" in out and rc == 130  # ...the flag did not


def test_a_run_started_with_ctrl_c_ignored_keeps_ignoring_it():
    # a background job (`quantcompare compare ... &` in a script) is not interrupted by a Ctrl-C meant for the shell
    # (the finalizer then sleeps its 2 s out: nothing stops it)
    rc, out, err = _run(ignored=True)
    assert rc == 0 and "checkpoint saw the interrupt" not in out
