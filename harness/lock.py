"""One run per output folder at a time: OUT/.quantcompare.lock names its holder (pid, host, start,
command). A second run stops with one line naming the holder; a lock left by a killed run (its
process is gone) is taken over, and the run says so."""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from core.errors import UserError

LOCK_NAME = ".quantcompare.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, out: Path, log=print) -> None:
        self.path = out / LOCK_NAME
        self.log = log
        self.held = False

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv)[:300]}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder and (holder.get("host") != me["host"] or _alive(int(holder.get("pid", -1)))):
                    raise UserError(f"'{self.path.parent}' is in use by another run (pid {holder.get('pid')} on "
                                    f"{holder.get('host')}, started {holder.get('started')}): wait for it to finish or "
                                    "choose another --out") from None
                self.log(f"[lock] taking over a stale lock of a run that is gone "
                         f"(pid {holder.get('pid') if holder else '?'}, started {holder.get('started') if holder else '?'})")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise UserError(f"could not take the lock {self.path}")

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
