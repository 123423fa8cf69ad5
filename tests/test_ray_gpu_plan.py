"""--executor ray with --device cuda on a driver that has no GPU: the run is planned from the cluster's GPUs, GPU cells
are placed on the node that offers them, and a task no node can hold is refused at start in one line. The local
cluster's GPU node advertises one GPU it does not have (QC_FAKE_GPU_MEMORY_MB gives its memory), and its cells run on
the CPU under the test switch QC_TEST_GPU_CELLS_ON_CPU."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--variants", "fp16,gguf-f16", "--runtimes", "transformers,llama.cpp", "--windows", "2", "--n-ctx", "128",
         "--speed-repeats", "1", "--decode-tokens", "8", "--prefill-tokens", "32", "--tasks", "none", "--gen-prompts", "2",
         "--gen-tokens", "4", "--long-ctx", "0", "--instructions", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def gpu_cluster():
    pytest.importorskip("ray", reason="Ray is installed by `make setup-ray` (make test does)")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    c.add_node(num_cpus=1, num_gpus=1, resources={"node_gpu": 1})
    c.add_node(num_cpus=1, resources={"node_cpu": 1})
    c.wait_for_nodes()
    yield c
    c.shutdown()


def _run(model, out, store_dir, cluster, gpu_mb: int, *extra, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(store_dir), QC_FAKE_GPU_MEMORY_MB=str(gpu_mb),
               QC_TEST_GPU_CELLS_ON_CPU="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "harness.cli", "compare", "--model", str(model), "--out", str(out), *SMALL,
           "--executor", "ray", "--ray-address", cluster.address, *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout)


def test_gpu_cells_are_planned_from_the_cluster_and_placed_on_its_gpu_node(gpu_cluster, tiny_llama, tmp_path):
    from harness.gpu_plan import visible_gpus

    assert not visible_gpus(), "this test plays a driver without GPUs"
    out = tmp_path / "run"
    p = _run(tiny_llama, out, tmp_path / "store", gpu_cluster, 80_000, "--device", "cuda")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((out / "results.json").read_text())
    assert r["profile"]["name"] == "release"  # --device cuda's default profile
    cells = [json.loads(f.read_text()) for f in (out / "cells").glob("*.json")
             if not f.name.endswith((".spec.json", ".result.json"))]
    assert cells and {c["measured_on"].get("node") for c in cells} == {"node_gpu"}
    for c in cells:  # each cell was given one GPU of the cluster by the plan (the driver saw none)
        assert c["result"]["parallel"]["gpus"] == 1, c["result"].get("parallel")
    builds = [s for s in r["stages"] if s["kind"] == "build"]
    assert builds and all("on node_" in s["note"] for s in builds if not s["cached"])


def test_a_model_no_gpu_node_holds_is_refused_before_anything_is_built(gpu_cluster, tiny_llama, tmp_path):
    t0 = time.time()
    p = _run(tiny_llama, tmp_path / "run", tmp_path / "store", gpu_cluster, 1, "--device", "cuda")
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "GB of GPU memory" in err[0], p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "store" / "artifacts").exists()
    assert time.time() - t0 < 180


def test_a_task_larger_than_every_node_is_refused_not_left_waiting(gpu_cluster, tiny_llama, tmp_path):
    p = _run(tiny_llama, tmp_path / "run", tmp_path / "store", gpu_cluster, 80_000, "--threads", "3", timeout=300)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "3 logical CPUs" in err[0] and "no node of the Ray cluster" in err[0], p.stderr


def test_task_requests_count_logical_cpus_and_memory():
    from harness.ray_resources import NodeOffer, host_bytes, refuse_unplaceable, request, threads_per_core
    from core.errors import UserError

    smt = [NodeOffer("a", "a", 16, 0, 64e9, (), 2), NodeOffer("b", "b", 8, 8, 512e9, (80 << 30,) * 8, 1)]
    assert threads_per_core(smt) == 2
    # an 8B model in float16 on a GPU stages 16 GB on the host; with a 128k vocabulary an 8k window's logits add 8 GB
    need = host_bytes(8_000_000_000, 128_256, "hf-safetensors", "transformers", "cuda", 8192, 16_000_000_000)
    assert 25e9 < need < 35e9
    refuse_unplaceable("x", request(8, 1, need), smt)  # node b holds it
    with pytest.raises(UserError, match="9 logical CPUs"):
        refuse_unplaceable("x", request(9, 1, need), smt)


def test_a_node_probe_counts_every_gpu_and_leaves_the_workers_environment(tmp_path, monkeypatch):
    """The probe once popped CUDA_VISIBLE_DEVICES from its Ray worker: the next task on that worker saw every GPU."""
    from harness.ray_resources import _node_gpus

    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0, 81559\\n1, 81559\\n'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.delenv("QC_FAKE_GPU_MEMORY_MB", raising=False)
    assert _node_gpus(2) == [81559 << 20] * 2
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
