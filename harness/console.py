"""Terminal output: stage lines, in-place progress, loud flags."""
from __future__ import annotations

import sys


class Console:
    def __init__(self, stream=sys.stdout) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._inline = False

    def _end_inline(self) -> None:
        if self._inline:
            self.stream.write("\n")
            self._inline = False

    def line(self, msg: str) -> None:
        self._end_inline()
        self.stream.write(msg + "\n")
        self.stream.flush()

    __call__ = line

    def progress(self, msg: str, every_line: bool = False) -> None:
        """Overwrite one line on a terminal; on a pipe, print only when asked."""
        if self.tty:
            self.stream.write("\r\033[K" + msg)
            self.stream.flush()
            self._inline = True
        elif every_line:
            self.line(msg)

    def alarm(self, msg: str) -> None:
        bar = "!" * min(100, max(20, len(msg) + 4))
        self.line(bar)
        self.line(f"! {msg}")
        self.line(bar)
