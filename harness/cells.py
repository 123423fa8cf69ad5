"""Launch each (variant, runtime) evaluation in its own subprocess; cache what succeeded.

A cell that crashes, runs out of memory or times out becomes a failed cell with its reason;
the run goes on."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.paths import REPO_ROOT

EVALUATOR_DIR = REPO_ROOT / "evaluators"


def evaluator_code_hash() -> str:
    """Cell results are reused only while the measuring code is unchanged."""
    h = hashlib.sha256()
    for f in sorted(EVALUATOR_DIR.rglob("*.py")):
        h.update(f.relative_to(EVALUATOR_DIR).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@dataclass
class CellOutcome:
    variant: str
    runtime: str
    ok: bool
    result: dict = field(default_factory=dict)
    error: str | None = None
    cached: bool = False
    wall_s: float = 0.0


@dataclass
class CellJob:
    variant: str
    runtime: str
    spec: dict
    key: str

    @property
    def name(self) -> str:
        return f"{self.variant}__{self.runtime}"


def cell_key(spec: dict, artifact_key: str, code_hash: str) -> str:
    stable = {k: v for k, v in spec.items() if k not in ("artifact", "windows", "reference_dir")}
    blob = json.dumps({"spec": stable, "artifact": artifact_key, "code": code_hash}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_cached(cells_dir: Path, job: CellJob) -> CellOutcome | None:
    f = cells_dir / f"{job.name}.json"
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != job.key or not data.get("result", {}).get("ok"):
        return None
    if job.spec.get("write_reference"):
        ref = Path(job.spec["reference_dir"])
        if not (ref / "COMPLETE").is_file():
            return None
    return CellOutcome(job.variant, job.runtime, True, data["result"], cached=True, wall_s=data.get("wall_s", 0.0))


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [l.strip() for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-500:]


def _worth_a_line(msg: str) -> bool:
    """On a pipe (no in-place updates) print every 10th window and the other stages."""
    if msg.startswith("window "):
        done, total = msg.split()[1].split("/")
        return int(done) % 10 == 0 or done == total
    return True


def run_cell(job: CellJob, cells_dir: Path, console, timeout_s: float, threads: int) -> CellOutcome:
    cells_dir.mkdir(parents=True, exist_ok=True)
    spec_file = cells_dir / f"{job.name}.spec.json"
    result_file = cells_dir / f"{job.name}.result.json"
    log_file = cells_dir / f"{job.name}.log"
    spec_file.write_text(json.dumps(job.spec, indent=1))
    result_file.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update({
        "OMP_WAIT_POLICY": "PASSIVE",
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": env.get("HF_HUB_OFFLINE", "1"),
    })
    label = f"  [{job.variant} × {job.runtime}]"
    t0 = time.time()
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "evaluators.cell", str(spec_file), str(result_file)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
        )
        try:
            for line in proc.stdout:
                if line.startswith("PROGRESS "):
                    msg = line[9:].strip()
                    console.progress(f"{label} {msg}", every_line=_worth_a_line(msg))
                if time.time() - t0 > timeout_s:
                    proc.kill()
                    break
            proc.wait(timeout=max(1.0, timeout_s - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    wall = time.time() - t0
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        tmp = cells_dir / f"{job.name}.json.tmp"
        tmp.write_text(json.dumps({"key": job.key, "wall_s": wall, "result": result}))
        tmp.replace(cells_dir / f"{job.name}.json")
        result_file.unlink()
        return CellOutcome(job.variant, job.runtime, True, result, wall_s=wall)
    rc = proc.returncode
    if wall > timeout_s:
        why = f"timed out after {timeout_s:.0f} s"
    elif rc is not None and rc < 0:
        why = f"killed by signal {-rc}" + (" (out of memory?)" if -rc == 9 else "")
    else:
        why = f"exit code {rc}"
    return CellOutcome(job.variant, job.runtime, False, error=f"{why}: {_tail(log_file)}", wall_s=wall)
