"""--executor ray: every variant build and every cell is a Ray task, on whichever node of the cluster has the
resources the task declares (CPU threads; GPUs as harness/gpu_plan.py gave the cell). A task waits for what it
reads (a variant for the variants it `needs`, a cell for the fp16 reference) through Ray's object references.

The tasks run the local executor's own functions (harness.variants.build_one, harness.cell_runs.run_job: the
callers hand them in, so this module imports neither), so a
cell is still a subprocess of the node, keyed and stored as on one host: a node keys each cell again as it sees
itself (its device class, its environment), looks in the shared store first, and never recomputes a stored cell.
Every node needs the same checkout with its environments, and the store (and the run folder) on a filesystem
they all share; `check_cluster` says at start which node lacks what. Ray is imported only here."""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from harness import store
from harness.ray_resources import node_label

TASK_RETRIES = 2  # a task whose worker or node dies is run again, at most this often, wherever Ray finds room


@dataclass
class TaskConsole:
    """A console inside a task: its lines go back to the driver with the task's result."""
    lines: list = field(default_factory=list)

    def line(self, msg: str) -> None:
        self.lines.append(("line", msg))

    def alarm(self, msg: str) -> None:
        self.lines.append(("alarm", msg))

    def progress(self, msg: str) -> None:  # progress inside a task is not relayed; its end is
        pass


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: `make setup-ray` installs it (requirements/ray.txt)") from None
    return ray


_CONNECT = threading.Lock()


def connect(cfg, console):
    """Join the cluster at cfg.ray_address ("auto": the one running here, else start a local one); once per
    driver (several models share it)."""
    ray = _ray()
    with _CONNECT:
        if ray.is_initialized():
            return ray
        return _connect(ray, cfg, console)


def _connect(ray, cfg, console):
    kw = dict(log_to_driver=False, include_dashboard=False, logging_level="ERROR",
              runtime_env={"env_vars": _shared_env()})
    try:
        ray.init(address=cfg.ray_address, **kw)
    except ConnectionError as e:
        if cfg.ray_address != "auto":
            raise UserError(f"no Ray cluster at {cfg.ray_address}: {str(e).splitlines()[0]}") from None
        ray.init(**kw)
        console.line("[ray] no cluster running here: started a local one")
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    console.line(f"[ray] {len(nodes)} node(s): " + ", ".join(f"{node_label(n)} ({n['Resources'].get('CPU', 0):.0f} CPU"
                 f"{', %d GPU' % n['Resources']['GPU'] if n['Resources'].get('GPU') else ''})" for n in nodes))
    check_cluster(cfg, console)
    return ray


def _shared_env() -> dict:
    """What every task must see as the driver does: the store, plugins, offline hub."""
    keys = ("QC_STORE_DIR", "QC_PLUGINS", "QC_VENVS_DIR", "HF_HUB_OFFLINE", "HF_HOME", "QC_LLAMA_TOOLS",
            # test switches: a cluster's fake GPUs (harness/ray_resources.py) and the fault battery's hook
            "QC_FAKE_GPU_MEMORY_MB", "QC_TEST_GPU_CELLS_ON_CPU", "QC_FAULT_CELL")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    env.setdefault("QC_STORE_DIR", str(store.store_dir()))
    return env


def this_node() -> str:
    """The label of the node this task runs on."""
    ray = _ray()
    me = ray.get_runtime_context().get_node_id()
    for n in ray.nodes():
        if n["NodeID"] == me:
            return node_label(n)
    return f"{socket.gethostname()}/{me[:8]}"


def missing_environments(cfg) -> list[str]:
    """The tool environments this run needs that are missing on the calling node."""
    from core import registry
    from core.tool_envs import ENVIRONMENTS

    need = {"main"} | {registry.runtime(r).env for r in cfg.runtimes if registry.runtime(r).env}
    if any(v.startswith("awq") for v in cfg.variants):
        need.add("autoawq")
    return sorted(n for n in need if n in ENVIRONMENTS and not ENVIRONMENTS[n].stamp.is_file())


def _probe(cfg, marker: str) -> dict:
    return {"node": this_node(), "store": Path(marker).is_file(), "missing": missing_environments(cfg)}


def check_cluster(cfg, console) -> None:
    """One probe per node: does it see the store the driver writes to, and the tool environments? One line per
    thing missing; the run goes on (a cell placed on such a node fails with a line naming it)."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = store.area("machine") / f".ray-probe-{socket.gethostname()}-{os.getpid()}"
    marker.write_text("quantcompare store probe\n")
    probe = ray.remote(num_cpus=0)(_probe)
    try:
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(cfg, str(marker))
                for n in ray.nodes() if n.get("Alive")]
        for r in ray.get(refs, timeout=120):
            if not r["store"]:
                console.alarm(f"[ray] node {r['node']} does not see the store {store.store_dir()}: put it on a shared "
                              "filesystem (QC_STORE_DIR) for every node")
            for env in r["missing"]:
                console.alarm(f"[ray] node {r['node']} lacks the {env} environment: its cells will fail there")
    finally:
        marker.unlink(missing_ok=True)


def _relay(console, lines: list) -> None:
    for kind, msg in lines:
        (console.alarm if kind == "alarm" else console.line)(msg)


def _cell_resources(job, cfg, nodes) -> dict:
    """What a cell asks of the cluster: the logical CPUs its --threads take, its GPUs, its host memory."""
    from harness.ray_resources import HOST_BASE_BYTES, request, threads_per_core

    gpus = int((job.spec.parallel or {}).get("gpus", 1 if job.spec.device != "cpu" else 0))
    return request(max(1, cfg.eval.threads) * threads_per_core(nodes), gpus, job.host_bytes or HOST_BASE_BYTES)


def _run_job_task(run_job, job, cells_dir: str, cfg, reference=None):
    """A cell on this node: its environment checked, keyed again as this node sees itself, then run_job. `reference`
    is what the task that wrote the fp16 reference this cell reads returned (Ray starts this task once it exists);
    a reference that failed leaves the cell without KLD, as on one host."""
    from harness import plugins
    from harness.cell_launcher import CellOutcome, cell_key, evaluator_code_hash
    from core import registry

    plugins.load(cfg.plugins)
    node, console = this_node(), TaskConsole()
    os.environ["QC_NODE"] = node  # recorded in the cell's measured_on
    env = registry.runtime(job.runtime).env
    missing = [e for e in missing_environments(cfg) if e in ("main", env)]
    if missing:
        msg = f"node {node} lacks the {missing[0]} environment (make it there, or keep this runtime off that node)"
        console.alarm(f"[eval] {job.variant} × {job.runtime} FAILED: {msg}")
        return CellOutcome(job.variant, job.runtime, False, error=msg, kind=job.kind, node=node), console.lines
    if job.artifact_key:
        job.key = cell_key(job.spec, job.artifact_key, evaluator_code_hash())
    o = run_job(job, Path(cells_dir), cfg, console, ref_ok=reference is None or bool(reference[0].ok))
    o.node = node
    return o, console.lines


def evaluate_on_ray(jobs: list, cells_dir: Path, cfg, console, run_job) -> list:
    """Every job as a task; outcomes in the jobs' order, each reported as it finishes on whichever node. A cell that
    reads an fp16 reference (the windows' or the long windows') is handed the task that writes it, so Ray starts it
    once that one has finished, ok or not (without it the cell measures PPL and speed only, under a key of its own,
    as on one host); a cell never waits for a reference it does not read."""
    from harness.cell_launcher import CellOutcome

    from harness.ray_resources import offers, refuse_unplaceable

    ray = connect(cfg, console)
    task = ray.remote(max_retries=TASK_RETRIES)(_run_job_task)
    nodes = offers(ray)
    asks = [_cell_resources(j, cfg, nodes) for j in jobs]
    for j, req in zip(jobs, asks):  # before anything is submitted: Ray would wait forever for such a task
        refuse_unplaceable(f"the {j.kind} cell {j.variant} × {j.runtime}", req, nodes)

    def failed(i, err):
        j = jobs[i]
        console.alarm(f"[eval] {j.variant} × {j.runtime} FAILED: {err}")
        return CellOutcome(j.variant, j.runtime, False, error=err, kind=j.kind)

    writer = {j.spec.reference_dir: i for i, j in enumerate(jobs) if j.spec.write_reference}
    refs: list = [None] * len(jobs)
    for i in sorted(range(len(jobs)), key=lambda i: not jobs[i].spec.write_reference):  # writers first
        j = jobs[i]
        w = writer.get(j.spec.reference_dir) if j.spec.reference_dir and not j.spec.write_reference else None
        refs[i] = task.options(**asks[i], scheduling_strategy="SPREAD").remote(
            run_job, j, str(cells_dir), cfg, refs[w] if w is not None else None)
    return _gather(ray, refs, console, failed)


def _gather(ray, refs: list, console, on_error) -> list:
    """Results in submission order; each task's lines printed as it finishes. A task that Ray gave up on (its
    worker or node died more than TASK_RETRIES times) becomes on_error(index, reason)."""
    index = {r: i for i, r in enumerate(refs)}
    out = [None] * len(refs)
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        i = index[ready[0]]
        try:
            value, lines = ray.get(ready[0])
        except ray.exceptions.RayTaskError as e:
            err = _unwrap(e)
            if isinstance(err, UserError):
                raise err from None
            out[i] = on_error(i, str(err))
            continue
        except ray.exceptions.RayError as e:  # worker or node died, retries spent
            out[i] = on_error(i, f"{type(e).__name__} after {TASK_RETRIES} retries: {str(e).splitlines()[0][:200]}")
            continue
        _relay(console, lines)
        out[i] = value
    return out


def _unwrap(e) -> Exception:
    """A task's own UserError comes back as itself (one line); anything else as a RuntimeError naming it."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, UserError):
        return UserError(str(cause))
    return RuntimeError(f"a Ray task failed: {cause!r}" if cause else str(e).splitlines()[-1])


def _build_task(build_one, q, source, cfg, calibration: str, artifacts_dir: str, sensitivity, *upstream):
    from harness import plugins

    plugins.load(cfg.plugins)
    console = TaskConsole()
    ups = {pair[0].variant: pair[0] for pair in upstream}
    node = this_node()
    o = build_one(q, source, cfg, Path(calibration), Path(artifacts_dir), ups, console,
                  Path(sensitivity) if sensitivity else None)
    o.node = node
    if o.error:  # which node failed matters on a cluster (one without the tool's environment, say)
        o.error = f"on node {node}: {o.error}"
    return o, console.lines


def build_on_ray(source, cfg, calibration: Path, artifacts_dir: Path, console, sensitivity: Path | None,
                 build_one, VariantOutcome) -> dict:
    """Each variant as a task; one that `needs` others is handed their results, so Ray starts it once they exist."""
    from harness.ray_resources import build_bytes, offers, refuse_unplaceable, request, threads_per_core
    from quantizers.registry import make_quantizers

    ray = connect(cfg, console)
    task = ray.remote(max_retries=TASK_RETRIES)(_build_task)
    nodes = offers(ray)
    quantizers = make_quantizers(cfg.variants, cfg.awq)
    asks = {}
    for q in quantizers:  # every build is checked before any is submitted
        gpus = 1 if (cfg.awq.device != "cpu" and q.variant.startswith("awq")) else 0
        asks[q.variant] = request(max(1, cfg.eval.threads) * threads_per_core(nodes), gpus,
                                  build_bytes(int(getattr(source, "n_params", 0) or 0), q.variant, cfg.awq.device))
        refuse_unplaceable(f"the build of {q.variant}", asks[q.variant], nodes)
    ref_of, refs, names = {}, [], []
    for q in quantizers:
        ups = [ref_of[n] for n in q.needs if n in ref_of]
        r = task.options(**asks[q.variant]).remote(
            build_one, q, source, cfg, str(calibration), str(artifacts_dir), str(sensitivity) if sensitivity else None, *ups)
        ref_of[q.variant] = r
        refs.append(r)
        names.append(q.variant)

    def failed(i, err):
        console.alarm(f"[{names[i]}] FAILED: {err}")
        return VariantOutcome(names[i], None, None, error=err)

    return dict(zip(names, _gather(ray, refs, console, failed)))
