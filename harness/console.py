"""Terminal output: stage lines, progress with an estimate of the time left, loud flags, and a
plain-text copy of all of it in OUT/run.log."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

_COUNTER = re.compile(r"(\d+)/(\d+)")
PIPE_EVERY_S = 15.0  # on a pipe (CI logs), a progress line at most this often per task, and at its end


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Console:
    def __init__(self, stream=sys.stdout, prefix: str = "") -> None:
        self.stream = stream
        self.prefix = prefix  # e.g. "[model] " when several models share the terminal
        self.tty = stream.isatty()
        self._inline = False
        self._log = None
        self._early: list[str] = []  # lines before the log is attached (written to it on attach)
        self._started: dict[str, tuple[float, int]] = {}  # progress key -> (first seen, count then)
        self._last_line: dict[str, float] = {}

    def attach_log(self, path: Path) -> None:
        """Copy every line (and throttled progress) to a plain-text log from now on."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(path, "a", encoding="utf-8")
        self._log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
        for line in self._early:
            self._log.write(line)
        self._early = []
        self._log.flush()

    def _to_log(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}\n"
        if self._log:
            self._log.write(line)
            self._log.flush()
        else:
            self._early.append(line)

    def _end_inline(self) -> None:
        if self._inline:
            self.stream.write("\n")
            self._inline = False

    def line(self, msg: str) -> None:
        self._end_inline()
        self.stream.write(self.prefix + msg + "\n")
        self.stream.flush()
        self._to_log(msg)

    __call__ = line

    def with_eta(self, msg: str) -> tuple[str, str | None, bool]:
        """Append "~Xs left" to a message with a done/total counter, from the rate since the counter
        was first seen; returns (message, counter key, finished)."""
        m = _COUNTER.search(msg)
        if not m:
            return msg, None, False
        done, total = int(m.group(1)), int(m.group(2))
        key = msg[: m.start()]
        now = time.time()
        first = self._started.get(key)
        if first is None or done < first[1]:
            self._started[key] = first = (now, done)
        t0, d0 = first
        if done > d0 and total > done:
            left = (now - t0) / (done - d0) * (total - done)
            msg = f"{msg}, ~{_fmt_s(left)} left"
        return msg, key, done >= total

    def progress(self, msg: str, every_line: bool = False) -> None:
        """One in-place line on a terminal; on a pipe and in the log, a line every PIPE_EVERY_S per
        counter (and when it completes), so a long silent stage still shows how far it is."""
        msg, key, finished = self.with_eta(msg)
        now = time.time()
        due = every_line or finished or key is None or now - self._last_line.get(key, 0.0) >= PIPE_EVERY_S
        if due and key is not None:
            self._last_line[key] = now
        if self.tty:
            self.stream.write("\r\033[K" + self.prefix + msg)
            self.stream.flush()
            self._inline = True
            if due:
                self._to_log(msg)
        elif due:
            self.line(msg)

    def alarm(self, msg: str) -> None:
        bar = "!" * min(100, max(20, len(msg) + 4))
        self.line(bar)
        self.line(f"! {msg}")
        self.line(bar)
