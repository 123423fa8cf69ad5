"""--executor ray on a real local Ray cluster started here: a head with no CPUs and two worker nodes (node_a,
node_b) of one CPU each, so every build and cell runs on a worker. No mocks: Ray schedules, retries and kills."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.paths import CALIBRATION_TEXT
from harness import store

ROOT = Path(__file__).resolve().parent.parent
# awq-int4 reads fp16 (its declared need): on a cluster a build waits only for what it declares
ARGS = ["--variants", "fp16,gguf-f16,gguf-q4_k_m,awq-int4", "--awq-calib-samples", "8", "--awq-calib-seq-len", "64",
        "--windows", "3", "--speed-repeats", "1", "--decode-tokens", "16",
        "--prefill-tokens", "128", "--n-ctx", "256", "--tasks", "none", "--gen-prompts", "4", "--gen-tokens", "8",
        "--threads", "1", "--long-ctx", "512", "--instructions", "4", "--instruct-tokens", "8"]
TIMED = re.compile(r"tok_s|ttft|latency|rss|roofline|seconds|_ms$|_s$")  # timings and memory: differ run to run


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray", reason="Ray is installed by `make setup-ray` (make test does)")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    c.add_node(num_cpus=1, resources={"node_a": 1})
    c.add_node(num_cpus=1, resources={"node_b": 1})
    c.wait_for_nodes()
    yield c
    c.shutdown()


def _cmd(model, out, *extra):
    return [sys.executable, "-m", "harness.cli", "compare", "--model", str(model), "--out", str(out), *ARGS, *extra]


def _env(store_dir: Path) -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(store_dir))


def compare(model, out, store_dir, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(model, out, *extra), cwd=ROOT, capture_output=True, text=True, env=_env(store_dir),
                          timeout=900)


def on_ray(cluster) -> list[str]:
    return ["--executor", "ray", "--ray-address", cluster.address]


def _rows(results: dict) -> dict:
    return {(r["variant"], r["runtime"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"]) for r in results["rows"]}


def _keys(out: Path) -> dict:
    return {f.name: json.loads(f.read_text())["key"] for f in (out / "cells").glob("*.json")
            if not f.name.endswith((".spec.json", ".result.json"))}


def _cell_processes() -> list:
    import psutil

    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "evaluators.cell_process" in cmd:
            out.append(proc)
    return out


def _kill_a_worker_mid_cell(driver: subprocess.Popen, out: Path, deadline_s: float = 600) -> int | None:
    """SIGKILL the Ray worker running the first cell of this run (under `out`) seen; its cell subprocess dies with
    it. Only a Ray worker (ray::…) is killed: tests running beside this one have cells of their own."""
    deadline = time.time() + deadline_s
    while time.time() < deadline and driver.poll() is None:
        for proc in _cell_processes():
            try:
                mine = str(out) in " ".join(proc.cmdline())
                worker = proc.parent()
                is_ray = worker is not None and "ray::" in " ".join(worker.cmdline())
            except Exception:  # the process ended while being looked at
                continue
            if mine and is_ray:
                os.kill(worker.pid, signal.SIGKILL)
                return worker.pid
        time.sleep(0.1)
    return None


@pytest.fixture(scope="module")
def ray_store(tmp_path_factory) -> Path:
    """The store of the first Ray run, which the two-model run reuses (its tiny-llama cells are the same)."""
    return tmp_path_factory.mktemp("ray-store")


@pytest.mark.slow
def test_ray_run_survives_a_killed_worker_spreads_cells_and_matches_the_local_run(cluster, tiny_llama, tmp_path,
                                                                                  ray_store):
    driver = subprocess.Popen(_cmd(tiny_llama, tmp_path / "ray", *on_ray(cluster)), cwd=ROOT, env=_env(ray_store),
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed = _kill_a_worker_mid_cell(driver, tmp_path / "ray")
    stdout, _ = driver.communicate(timeout=900)
    assert killed, "no cell was seen running"
    assert driver.returncode == 0, stdout[-3000:]
    assert "FAILED" not in stdout  # the killed cell was retried by Ray, and the run went on
    q = compare(tiny_llama, tmp_path / "local", tmp_path / "store-local")
    assert q.returncode == 0, q.stdout[-3000:] + q.stderr[-3000:]
    ray_doc = json.loads((tmp_path / "ray" / "results.json").read_text())
    local_doc = json.loads((tmp_path / "local" / "results.json").read_text())
    assert ray_doc["config"]["run"]["executor"] == "ray" and local_doc["config"]["run"]["executor"] == "local"
    assert all(c["status"] == "ok" for c in ray_doc["cells"]) and len(ray_doc["cells"]) == 4
    a, b = _rows(ray_doc), _rows(local_doc)
    assert set(a) == set(b)
    differ = sorted({k[2] for k in a if a[k] != b[k]})
    assert all(TIMED.search(m) for m in differ), differ  # every quality figure identical, to the last digit
    assert [k for k in a if k[2] == "kld_mean"] and not [m for m in differ if "kld" in m or "ppl" in m]
    assert _keys(tmp_path / "ray") == _keys(tmp_path / "local")  # the same cells, under the same keys
    nodes = {s["note"] for s in ray_doc["stages"] if s["kind"] in ("build", "cell") and s["note"]}
    assert {"on node_a", "on node_b"} <= nodes, nodes  # work landed on both workers
    assert "[ray] 3 node(s)" in stdout


@pytest.mark.slow
def test_ray_driver_killed_then_the_rerun_reuses_the_store(cluster, tiny_llama, tmp_path):
    out, st = tmp_path / "run", tmp_path / "store"
    driver = subprocess.Popen(_cmd(tiny_llama, out, *on_ray(cluster)), cwd=ROOT, env=_env(st), text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and driver.poll() is None and not list((st / "cells").glob("*.json")):
        time.sleep(0.2)
    driver.kill()  # the driver dies; Ray ends its tasks
    driver.wait()
    stored = len(list((st / "cells").glob("*.json")))
    assert stored >= 1
    p = compare(tiny_llama, out, st, *on_ray(cluster))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.count("cached result reused") >= stored and "cached artifact reused" in p.stdout
    again = compare(tiny_llama, out, st, *on_ray(cluster))
    assert again.returncode == 0
    assert "building" not in again.stdout and again.stdout.count("cached result reused") == 12  # 4 quality, 4 long, 4 instruct
    assert not [f for f in (st / "artifacts").iterdir() if f.name.startswith(".")]  # no partial artifact left


@pytest.mark.slow
def test_ray_two_models_in_one_invocation(cluster, tiny_llama, tiny_qwen3, tmp_path, ray_store):
    out = tmp_path / "models"
    p = subprocess.run([*_cmd(tiny_llama, out, *on_ray(cluster)), "--model", str(tiny_qwen3)], cwd=ROOT,
                       capture_output=True, text=True, env=_env(ray_store), timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads((out / "summary.json").read_text())
    assert [m["folder"] for m in doc["models"]] == ["tiny-llama", "tiny-qwen3"]
    for m in doc["models"]:
        assert m["exit_code"] == 0 and m["verdicts"] and (out / m["report"]).is_file()
        assert len(json.loads((out / m["folder"] / "results.json").read_text())["cells"]) == 4
    page = (out / "index.html").read_text()
    assert 'href="tiny-llama/report.html"' in page and 'href="tiny-qwen3/report.html"' in page
    assert "[tiny-llama] " in p.stdout and "[tiny-qwen3] " in p.stdout


@pytest.mark.slow
def test_ray_sensitivity_sweep_split_across_workers(cluster, tiny_llama, tmp_path):
    out = tmp_path / "sens"
    p = subprocess.run([sys.executable, "-m", "harness.cli", "sensitivity", "--model", str(tiny_llama), "--out", str(out),
                        "--n-ctx", "256", "--threads", "1", *on_ray(cluster)], cwd=ROOT, capture_output=True, text=True,
                       env=_env(tmp_path / "store"), timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads((out / "sensitivity.json").read_text())
    assert doc["groups"] and all("kld_increase" in g for g in doc["groups"])
    cells = [json.loads(f.read_text()) for f in (out / "work" / "sensitivity" / "cells").glob("gguf-probe-*__llama.cpp.json")]
    hosts = {c["measured_on"].get("node") for c in cells}
    assert hosts >= {"node_a", "node_b"}, hosts


@pytest.mark.slow
def test_a_failed_long_reference_takes_kld_from_the_long_cells_only_on_both_executors(cluster, tiny_llama, tmp_path):
    """The fp16 long-window cell (which writes the long reference) crashes: every cell still has its window KLD, only
    the long cells lose theirs, and Ray agrees with one host (each cell waits for the reference it reads)."""
    docs = {}
    for name, extra in (("local", []), ("ray", on_ray(cluster))):
        env = dict(_env(tmp_path / f"store-{name}"), QC_FAULT_CELL="fp16|transformers|raise|long")
        p = subprocess.run(_cmd(tiny_llama, tmp_path / name, "--variants", "fp16,gguf-f16", "--instructions", "0", *extra),
                           cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
        assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stdout[-3000:] + p.stderr[-3000:]
        docs[name] = json.loads((tmp_path / name / "results.json").read_text())
    for doc in docs.values():
        rows = _rows(doc)
        assert ("gguf-f16", "llama.cpp", "kld_mean") in rows  # the window reference was written
        assert not [k for k in rows if k[0] == "gguf-f16" and k[2].startswith("long_kld")], sorted(rows)
    a, b = _rows(docs["ray"]), _rows(docs["local"])
    assert set(a) == set(b)
    assert all(TIMED.search(k[2]) for k in a if a[k] != b[k])


def test_commit_dir_first_complete_entry_wins(tmp_path):
    """Two builders of one entry: the second sees the first's complete entry and drops its own; nothing partial stays."""
    folder = tmp_path / "gguf-f16-abc"
    ok = lambda: (folder / "manifest.json").is_file()  # noqa: E731
    mine, theirs = store.partial_name(folder), store.partial_name(folder)
    assert mine != theirs and mine.name.startswith(".")
    for d, text in ((mine, "mine"), (theirs, "theirs")):
        d.mkdir()
        (d / "manifest.json").write_text(text)
    assert store.commit_dir(theirs, folder, ok) is True
    assert store.commit_dir(mine, folder, ok) is False
    assert (folder / "manifest.json").read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
    again = store.partial_name(folder)
    again.mkdir()
    (again / "manifest.json").write_text("forced")
    assert store.commit_dir(again, folder, ok, replace=True) is True  # --force replaces
    assert (folder / "manifest.json").read_text() == "forced" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.slow
def test_ray_two_nodes_build_one_artifact_at_once(cluster, tiny_llama, tmp_path, monkeypatch):
    """node_a and node_b build gguf-f16 into one empty store at the same moment: one artifact, no partial file."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from harness.config import resolve
    from harness.ray_executor import _build_task, node_label
    from harness.source import resolve_source
    from harness.variants import build_one
    from quantizers.registry import make_quantizers

    st = tmp_path / "store"
    monkeypatch.setenv("QC_STORE_DIR", str(st))
    cfg = resolve({"run": {"variants": ["gguf-f16"], "executor": "ray"}, "eval": {"threads": 1}})
    source = resolve_source(str(tiny_llama))
    q = make_quantizers(cfg.variants, cfg.awq)[0]
    ray.init(address=cluster.address, runtime_env={"env_vars": {"QC_STORE_DIR": str(st)}}, log_to_driver=False)
    try:
        gate = tmp_path / "started"
        gate.mkdir()

        def build_together(name, q, *args):  # both commit only once both have built (neither can reuse the other's)
            built = q.build

            def build(ctx, tmp):
                m = built(ctx, tmp)
                (gate / name).touch()
                while len(list(gate.iterdir())) < 2:
                    time.sleep(0.01)
                return m

            q.build = build
            return _build_task(build_one, q, *args)

        task = ray.remote(num_cpus=1)(build_together)
        nodes = {node_label(n): n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[name], soft=False)).remote(
                name, q, source, cfg, str(CALIBRATION_TEXT), str(tmp_path / f"run-{name}" / "artifacts"), None)
                for name in ("node_a", "node_b")]
        results = ray.get(refs, timeout=600)
        outcomes = [o for o, _ in results]
    finally:
        ray.shutdown()
    assert {o.node for o in outcomes} == {"node_a", "node_b"}
    assert not any(o.cached for o in outcomes)  # both built: a race, not a reuse
    lines = [m for _, ls in results for _, m in ls]
    assert sum("building with" in m for m in lines) == 2 and sum("stored the same artifact first" in m for m in lines) == 1
    assert all(o.manifest is not None for o in outcomes)
    assert len({o.folder for o in outcomes}) == 1 and outcomes[0].manifest.cache_key == outcomes[1].manifest.cache_key
    entries = list((st / "artifacts").iterdir())
    assert [e.name for e in entries] == [outcomes[0].folder.name]  # one artifact, nothing partial beside it
    from quantizers.base import Manifest

    m = Manifest.load(outcomes[0].folder)
    assert m.problem(outcomes[0].folder) is None


@pytest.mark.slow
def test_ray_start_check_names_a_node_without_an_environment(cluster, tmp_path, monkeypatch):
    """A node whose tool environments are elsewhere ($QC_VENVS_DIR empty there): one line per missing environment,
    naming the node; the nodes that have them raise nothing."""
    import ray

    from harness.config import resolve
    from harness.ray_executor import check_cluster

    empty = tmp_path / "no-venvs"
    empty.mkdir()
    node = cluster.add_node(num_cpus=0, resources={"node_c": 1}, env_vars={"QC_VENVS_DIR": str(empty)})
    monkeypatch.setenv("QC_STORE_DIR", str(tmp_path / "store"))
    lines = []
    console = type("C", (), {"line": lambda self, m: lines.append(m), "alarm": lambda self, m: lines.append(m)})()
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, runtime_env={"env_vars": {"QC_STORE_DIR": str(tmp_path / "store")}},
                 log_to_driver=False)
        check_cluster(resolve({"run": {"variants": ["fp16", "awq-int4"], "runtimes": ["transformers", "vllm"]}}), console)
    finally:
        ray.shutdown()
        cluster.remove_node(node)
    missing = sorted(m for m in lines if "lacks" in m)
    assert missing == ["[ray] node node_c lacks the autoawq environment: its cells will fail there",
                       "[ray] node node_c lacks the vllm environment: its cells will fail there"], lines
