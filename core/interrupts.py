"""Ctrl-C that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread happens to be; when that is a finalizer (`__del__`) or a
callback run by the interpreter, the exception is printed as "Exception ignored" and dropped, while the tool
subprocess that shares the terminal's process group died of the same Ctrl-C. The run would then record a failed
build and go on to exit 0. The handler below also sets a flag that the run checks at its checkpoints (a tool that
failed, a cell that ended, before results are written), so an interrupted run always ends as interrupted (130).
"""
from __future__ import annotations

import signal
import threading

_flag = threading.Event()


def _handler(signum, frame) -> None:
    _flag.set()
    raise KeyboardInterrupt


def install() -> None:
    """Take Ctrl-C over from Python's default handler (main thread only). A process started with Ctrl-C ignored (a
    background job) keeps ignoring it, as Unix programs do."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)


def check() -> None:
    """Raise KeyboardInterrupt when Ctrl-C came earlier, even if the exception it raised then was swallowed."""
    if _flag.is_set():
        raise KeyboardInterrupt
