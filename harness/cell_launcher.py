"""Launch each (variant, runtime) evaluation in its own subprocess; cache what succeeded.

A cell that crashes, runs out of memory or times out becomes a failed cell with its reason;
the run goes on."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core import registry
from core.cellspec import CellSpec
from core.paths import REPO_ROOT, die_with_parent
from harness import store
from harness.host import environment_fingerprint, measured_here, this_host

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
    wall_s: float = 0.0  # how long the cell took when it ran (a cached cell keeps its original time)
    run_s: float = 0.0  # time spent on it in this run (near 0 when cached)
    kind: str = "quality"
    unsupported: str | None = None  # the runtime cannot read this artifact here, and why
    measured_on: dict | None = None  # the machine that measured it (harness.cell_launcher.measured_on)
    node: str | None = None  # the cluster node that ran or fetched it (--executor ray)
    key: str | None = None  # the cell's key in the store (harness/cell_launcher.cell_key)

    def doc(self) -> dict:
        """What results.json records of every cell, whatever its kind: who, status, reuse, time, where, its key."""
        return {"variant": self.variant, "runtime": self.runtime, "key": self.key,
                "status": "ok" if self.ok else "unsupported" if self.unsupported else "failed",
                "cached": self.cached, "wall_s": round(self.wall_s, 2), "error": self.error or self.unsupported,
                "measured_on": self.measured_on, "measured_here": measured_here(self.measured_on)}


@dataclass
class CellJob:
    variant: str
    runtime: str
    spec: CellSpec
    key: str
    artifact_key: str = ""  # the artifact's cache key: a node of a cluster keys the cell again as it sees itself
    host_bytes: int = 0  # host memory the cell is estimated to need (harness/ray_resources.host_bytes; a Ray task asks it)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def name(self) -> str:
        base = f"{self.variant}__{self.runtime}"
        return base if self.kind == "quality" else f"{base}__{self.kind}"


def cell_python(runtime: str, log=print) -> str:
    """The interpreter of the runtime's own environment (vLLM; made on first use), or the harness's."""
    venv = registry.runtime(runtime).env
    if venv is None:
        return sys.executable
    from core.tool_envs import env_python

    return str(env_python(venv, log))


def measures_speed(spec: CellSpec) -> bool:
    return spec.kind == "quality" and spec.speed


def measurement_identity(spec: CellSpec) -> dict:
    """What, besides its inputs, a cell's figures depend on: every package of its runtime's environment, the
    device class (CPU instruction sets or GPU model) and, when it times anything, the kind of host."""
    host = this_host()
    ident = {"runtime_env": environment_fingerprint(cell_python(spec.runtime, log=lambda *_: None))["sha256"],
             "device_class": host.device_class(spec.device)}
    if measures_speed(spec):
        ident["speed_class"] = host.speed_class()
    return ident


def measured_on(spec: CellSpec) -> dict:
    """Recorded with every result: the machine that measured it, and when."""
    host = this_host()
    return {"hostname": host.hostname, "cpu_model": host.cpu_model, "cpu_isa": list(host.cpu_isa),
            "gpus": list(host.gpus), "speed_class": host.speed_class(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **measurement_identity(spec),
            **({"node": os.environ["QC_NODE"]} if os.environ.get("QC_NODE") else {})}


def cell_key(spec: CellSpec, artifact_key: str, code_hash: str) -> str:
    """The spec's keyed fields (core.cellspec), the artifact's own key, the measuring code (evaluators/ and a
    plugin runtime's own source) and the machine."""
    parts = {"spec": spec.cache_fields(), "artifact": artifact_key, "code": code_hash,
             "measured_by": measurement_identity(spec)}
    plugin = registry.plugin_source_sha256(registry.runtime(spec.runtime).cls)
    if plugin:  # a --plugins runtime's own code: edit it and its old results are not reused
        parts["runtime_source"] = plugin
    blob = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_cached(cells_dir: Path, job: CellJob) -> CellOutcome | None:
    """The finished result of this very cell (same key) from the run folder or the shared store."""
    data = None
    for f in (cells_dir / f"{job.name}.json", store.cell_file(job.key)):
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        res = d.get("result", {})
        if d.get("key") == job.key and (res.get("ok") or res.get("unsupported")):
            data = d
            store.touch(f)
            break
    if data is None:
        return None
    res = data["result"]
    if job.spec.write_reference:  # the reference's top-k must be whole too (a long cell marks its own)
        ref = Path(job.spec.reference_dir)
        if not (ref / ("LONG-COMPLETE" if job.kind == "long" else "COMPLETE")).is_file():
            return None
    cells_dir.mkdir(parents=True, exist_ok=True)
    store.write_json(cells_dir / f"{job.name}.json", data)
    return CellOutcome(job.variant, job.runtime, bool(res.get("ok")), res, cached=True, wall_s=data.get("wall_s", 0.0),
                       kind=job.kind, unsupported=res.get("unsupported"), measured_on=data.get("measured_on"), key=job.key)


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [l.strip() for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-500:]


def _relay(stream, console, label: str) -> None:
    for line in stream:
        if line.startswith("PROGRESS "):
            msg = line[9:].strip()
            console.progress(f"{label} {msg}")


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the cell and anything it started (its session), whether or not it already exited."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# NVLink multicast stays off in NCCL, PyTorch and NVSHMEM (the lending hosts' rule: a program using it can
# take shared GPUs out of service)
NCCL_SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def launch_command(jobs: list[CellJob], files: list[tuple[Path, Path]], env: dict) -> list[str]:
    """The command line of one process that runs `jobs` (one, or a pair's measures in turn on one loaded model), and
    its environment's GPU settings: a cell sees only the GPUs it was given (llama.cpp would otherwise spread over
    every visible one), and a tensor-parallel cell is one process per GPU under torchrun (rank 0 writes results)."""
    job = jobs[0]
    py = cell_python(job.runtime)
    par = job.spec.parallel or {}
    n = int(par.get("gpus", 1))
    if par:
        visible = [x for x in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if x.strip()]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[:n] if visible else (str(i) for i in range(n)))
        env.update(NCCL_SAFE_ENV)
    args = [str(x) for pair in files for x in pair]
    if len(jobs) > 1:
        args = ["--group", *args]
    if par.get("layout") == "tensor-parallel":  # (one process too: the same code path on a single GPU)
        return [py, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
                "-m", "evaluators.cell_process", *args]
    return [py, "-m", "evaluators.cell_process", *args]


def run_cell(job: CellJob, cells_dir: Path, console, timeout_s: float, threads: int) -> CellOutcome:
    return run_group([job], cells_dir, console, timeout_s, threads)[0]


def run_group(jobs: list[CellJob], cells_dir: Path, console, timeout_s: float, threads: int) -> list[CellOutcome]:
    """Jobs of one (variant, runtime) pair in one subprocess, in order, on one loaded model (the cell process loads it
    again only where a job needs what the loaded one cannot give). Each job's result is its own, keyed and stored as
    if it had run alone; a job the process did not finish (a crash, the out-of-memory killer, a time-out) fails with
    the reason, and so do the ones after it that it took down."""
    cells_dir.mkdir(parents=True, exist_ok=True)
    files = [(cells_dir / f"{j.name}.spec.json", cells_dir / f"{j.name}.result.json") for j in jobs]
    for j, (spec_file, result_file) in zip(jobs, files):
        j.spec.save(spec_file)
        result_file.unlink(missing_ok=True)
    log_file = cells_dir / f"{jobs[0].name}.log"
    env = dict(os.environ)
    if registry.runtime(jobs[0].runtime).passive_omp:
        # torch and ggml in one process spin against each other (a runtime that needs active OpenMP threads,
        # llama.cpp, says so: core.registry.RuntimeInfo.passive_omp)
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    env.update({
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": env.get("HF_HUB_OFFLINE", "1"),
    })
    cmd = launch_command(jobs, files, env)
    label = f"  [{jobs[0].variant} × {jobs[0].runtime}]"
    t0 = time.time()
    with open(log_file, "w") as log:
        # Own session: engines that spawn workers (vLLM) are cleaned up with the whole group, and a
        # worker left holding the pipe cannot keep the harness waiting.
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
            preexec_fn=die_with_parent,
        )
        reader = threading.Thread(target=_relay, args=(proc.stdout, console, label), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout_s * len(jobs))
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt:
            _kill_group(proc)
            raise
        _kill_group(proc)
        reader.join(timeout=10)
    wall = time.time() - t0
    results = []
    for j, (_, result_file) in zip(jobs, files):
        try:
            results.append(json.loads(result_file.read_text()))
            result_file.unlink()
        except (OSError, ValueError):
            results.append(None)
    inside = sum(r.get("cell_seconds", 0.0) for r in results if r)
    outcomes = []
    for k, (j, result) in enumerate(zip(jobs, results)):
        # each job's own time inside the process; the first also carries the process's start and end
        jw = wall if len(jobs) == 1 else (result or {}).get("cell_seconds", 0.0) + (max(0.0, wall - inside) if k == 0 else 0.0)
        if result is not None:
            doc = {"key": j.key, "wall_s": jw, "result": result, "measured_on": measured_on(j.spec)}
            store.write_json(cells_dir / f"{j.name}.json", doc)
            if result.get("ok") or result.get("unsupported"):
                store.write_json(store.cell_file(j.key), doc)
            outcomes.append(CellOutcome(j.variant, j.runtime, bool(result.get("ok")), result, wall_s=jw, kind=j.kind,
                                        unsupported=result.get("unsupported"), measured_on=doc["measured_on"],
                                        error=result.get("error"), key=j.key))
            continue
        rc = proc.returncode
        if wall > timeout_s * len(jobs):
            why = f"timed out after {timeout_s * len(jobs):.0f} s"
        elif rc is not None and rc < 0:
            why = f"killed by signal {-rc}" + (" (out of memory?)" if -rc == 9 else "")
        elif rc == 0:
            why = "the cell process ended without this measure's result"
        else:
            why = f"exit code {rc}"
        outcomes.append(CellOutcome(j.variant, j.runtime, False, error=f"{why}: {_tail(log_file)}", wall_s=jw, kind=j.kind,
                                    key=j.key))
    return outcomes
