"""One content-addressed cache for everything a run computes, shared by every run on the machine:
variant artifacts (by their cache key: source hash, recipe, tool versions, upstream keys), evaluation
cells (by artifact key, settings and evaluator code), fp16 reference top-k files, lm-eval requests and
scores. A run folder links to what it used (OUT/artifacts/<variant> -> the store) and keeps copies of
its cell results, so it stays readable. Entries are written under a temporary name and renamed into
place, so a killed run never leaves half an entry where a later run would take it for whole.

Location: $QC_STORE_DIR, else <user cache>/quantcompare/store (`quantcompare cache ls|prune`)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from core.paths import cache_dir

KINDS = ("artifacts", "cells", "references", "tasks", "machine")


def store_dir() -> Path:
    return Path(os.environ.get("QC_STORE_DIR") or cache_dir() / "store")


def area(kind: str) -> Path:
    d = store_dir() / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


def artifact_slot(variant: str, key: str) -> Path:
    return area("artifacts") / f"{variant}-{key[:20]}"


def cell_file(key: str) -> Path:
    return area("cells") / f"{key[:32]}.json"


def touch(path: Path) -> None:
    """Mark an entry as used now (prune removes the least recently used)."""
    try:
        os.utime(path)
    except OSError:
        pass


def link_into_run(target: Path, link: Path) -> None:
    """OUT/artifacts/<variant> -> the store entry (a symlink; a copy where links are not possible)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    try:
        link.symlink_to(target, target_is_directory=target.is_dir())
    except OSError:
        shutil.copytree(target, link) if target.is_dir() else shutil.copy2(target, link)


def _writer() -> str:
    """This writer, unique across the nodes that share the store (a pid alone repeats from host to host)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def partial_name(folder: Path, what: str = "partial") -> Path:
    """Where an entry is written before it is renamed into place: never a name a reader takes."""
    return folder.with_name(f".{folder.name}.{what}-{_writer()}-{uuid.uuid4().hex[:8]}")


STALE_PARTIAL_S = 24 * 3600  # another host's partial entry untouched this long has no live writer


def _last_touched(path: Path) -> float:
    """The newest modification time of a partial entry or anything in it."""
    try:
        return max([path.stat().st_mtime] + [f.stat().st_mtime for f in path.rglob("*")])
    except OSError:
        return time.time()


def remove_stale_partials(folder: Path) -> None:
    """Partial entries left by killed builders: this host's whose process is gone, and another host's (a node that
    died, whose processes this host cannot see) untouched for STALE_PARTIAL_S."""
    from harness.lock import _alive

    host = socket.gethostname()
    for stale in folder.parent.glob(f".{folder.name}.partial-*"):
        parts = stale.name.rsplit(".partial-", 1)[-1].split("-")
        # .partial-<pid> (older runs) or .partial-<host>-<pid>-<nonce>
        pid = parts[0] if len(parts) == 1 else parts[-2]
        owner = host if len(parts) == 1 else "-".join(parts[:-2])
        mine_and_dead = owner == host and pid.isdigit() and not _alive(int(pid))
        if mine_and_dead or (owner != host and time.time() - _last_touched(stale) > STALE_PARTIAL_S):
            shutil.rmtree(stale, ignore_errors=True)


def _rename_or_yield(tmp: Path, folder: Path, trusted) -> bool | None:
    """Rename tmp into place: True. When the place is taken by a complete entry (`trusted()`), ours is removed:
    False. Taken by anything else: None."""
    try:
        tmp.rename(folder)
        return True
    except OSError:
        if trusted():
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        return None


def commit_dir(tmp: Path, folder: Path, trusted, replace: bool = False) -> bool:
    """Rename a finished entry into place (atomic on one filesystem, NFS and Lustre included). When another
    builder's complete entry is already there (`trusted()`), it wins and ours is removed: False. A leftover that
    is not trusted, or any entry when `replace`, is moved aside first."""
    if not replace:
        done = _rename_or_yield(tmp, folder, trusted)
        if done is not None:
            return done
    aside = partial_name(folder, "old")
    try:
        folder.rename(aside)
    except OSError:
        pass
    shutil.rmtree(aside, ignore_errors=True)
    done = _rename_or_yield(tmp, folder, trusted)
    if done is None:
        raise OSError(f"cannot put {tmp} in place of {folder}")
    return done


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_writer()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Entry:
    kind: str
    name: str
    path: Path
    bytes: int
    last_used: float


def _size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def entries() -> list[Entry]:
    out = []
    for kind in KINDS:
        d = store_dir() / kind
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.name.startswith("."):
                continue
            out.append(Entry(kind, p.name, p, _size(p), p.stat().st_mtime))
    return out


def prune(older_than_days: float | None = None, max_bytes: int | None = None, everything: bool = False) -> list[Entry]:
    """Remove entries not used for `older_than_days`, then the least recently used ones until the store
    holds at most `max_bytes`; or all of it. Returns what was removed."""
    items = sorted(entries(), key=lambda e: e.last_used)
    gone = []
    now = time.time()
    total = sum(e.bytes for e in items)
    for e in items:
        old = older_than_days is not None and now - e.last_used > older_than_days * 86400
        big = max_bytes is not None and total > max_bytes
        if everything or old or big:
            shutil.rmtree(e.path, ignore_errors=True) if e.path.is_dir() else e.path.unlink(missing_ok=True)
            total -= e.bytes
            gone.append(e)
    return gone
