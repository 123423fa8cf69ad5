"""What a Ray cluster offers and what each task asks of it (--executor ray).

- The cluster: one probe per alive node reports its GPUs (each one's memory, from nvidia-smi there: the driver needs
  no GPU of its own) and its logical CPUs per physical core. GPU cells are planned from the node whose GPUs hold the
  most, since a cell's GPUs are on one node (harness/gpu_plan.py places it there).
- A task: logical CPUs (Ray counts logical CPUs; --threads counts physical cores, so threads × the cluster's threads
  per core), GPUs (as the plan gave the cell), and host memory from the model's size (`host_bytes`).
- A task no alive node can hold is refused before anything is submitted, in one line (Ray would wait for it forever).

Test switch: QC_FAKE_GPU_MEMORY_MB makes each node report its Ray GPU resource as GPUs of that memory, for a local
cluster whose workers advertise GPUs they do not have (tests/test_ray_gpu_plan.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from core.errors import UserError

GIB = 1 << 30
# what a cell or build holds besides the model: the interpreter, torch or llama.cpp, tokenizers, the windows and
# their scores. Measured peak RSS of the default model's cells (135M parameters, 49k vocabulary, CPU) was 0.6-1.7 GB
# at 512-token windows (results.json rows peak_rss_bytes, measurements/cpu-smollm2-long/default): the model's share
# of that is below, the rest is this base
HOST_BASE_BYTES = int(1.0 * GIB)
SLACK = 1.25  # over the estimate: allocator fragmentation, the load's transient copies


@dataclass(frozen=True)
class NodeOffer:
    node_id: str
    label: str
    cpus: float  # logical CPUs, as Ray counts them
    gpus: float
    memory: float  # bytes Ray lets tasks reserve
    gpu_memory: tuple[int, ...]  # bytes of each GPU Ray gives tasks there
    threads_per_core: int


def node_label(node: dict) -> str:
    """A node's name: its custom resources (e.g. node_a) where it has some, else host/node-id."""
    custom = sorted(k for k in node.get("Resources", {}) if k not in ("CPU", "GPU", "memory", "object_store_memory")
                    and not k.startswith(("node:", "accelerator_type:")))
    host = node.get("NodeManagerHostname", "?")
    return ",".join(custom) if custom else f"{host}/{node['NodeID'][:8]}"


def _node_gpus(n_gpus: int) -> list[int]:
    fake = os.environ.get("QC_FAKE_GPU_MEMORY_MB", "")
    if fake.isdigit():
        return [int(fake) << 20] * n_gpus
    from harness.gpu_plan import visible_gpus

    # a probe asks for no GPU and Ray may hide them from it: every GPU of the node counts, and the worker's own
    # CUDA_VISIBLE_DEVICES stays as Ray set it for the tasks it runs next
    return visible_gpus(respect_visible=False)[:n_gpus]


def _probe_node(n_gpus: int) -> dict:
    import psutil

    logical, physical = psutil.cpu_count(logical=True) or 1, psutil.cpu_count(logical=False) or 1
    return {"gpu_memory": _node_gpus(n_gpus), "threads_per_core": max(1, round(logical / physical))}


_OFFERS: dict[str, list[NodeOffer]] = {}


def offers(ray) -> list[NodeOffer]:
    """What each alive node offers (probed once per driver and cluster)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    key = getattr(ray.get_runtime_context(), "gcs_address", None) or "cluster"
    if key in _OFFERS:
        return _OFFERS[key]
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = ray.remote(num_cpus=0)(_probe_node)
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
        int(n["Resources"].get("GPU", 0))) for n in nodes]
    got = ray.get(refs, timeout=120)
    out = [NodeOffer(n["NodeID"], node_label(n), float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)),
                     float(n["Resources"].get("memory", 0)), tuple(g["gpu_memory"]), int(g["threads_per_core"]))
           for n, g in zip(nodes, got)]
    _OFFERS[key] = out
    return out


def gpu_pool(nodes: list[NodeOffer]) -> list[int]:
    """The GPUs a cell can be given: those of the node whose GPUs hold the most (a cell's GPUs share one node)."""
    best = max(nodes, key=lambda n: (sum(n.gpu_memory), len(n.gpu_memory)), default=None)
    return list(best.gpu_memory) if best else []


def threads_per_core(nodes: list[NodeOffer]) -> int:
    return max((n.threads_per_core for n in nodes), default=1)


def host_bytes(n_params: int, vocab: int, fmt: str, runtime: str, device: str, n_ctx: int, file_bytes: int) -> int:
    """Host memory a cell needs: the weights as the runtime holds them on the host, fp16's logits for a window,
    and the base. transformers on a CPU computes in float32 (4 bytes a weight, quantized formats dequantized)
    and reads the float16 file first (2 more); on a GPU it stages the float16 weights on the host. llama.cpp maps
    its file. Logits: n_ctx × vocab floats, twice (the runtime's and the scores')."""
    if runtime == "llama.cpp":
        weights = file_bytes
    elif device == "cpu":
        weights = 6 * n_params
    else:
        weights = 2 * n_params
    logits = 2 * n_ctx * vocab * 4
    return int(SLACK * (HOST_BASE_BYTES + weights + logits))


def build_bytes(n_params: int, variant: str, device: str) -> int:
    """Host memory a build needs: AWQ calibrates the float32 model on a CPU (float16 staged on the host for a GPU),
    with its calibration activations; a GGUF conversion or quantization streams tensors (the model's float16 size)."""
    if variant.startswith("awq"):
        weights = (8 if device == "cpu" else 4) * n_params
    else:
        weights = 2 * n_params
    return int(SLACK * (HOST_BASE_BYTES + weights))


def request(cpus: int, gpus: int, memory: int) -> dict:
    return {"num_cpus": cpus, "num_gpus": gpus, "memory": memory}


def refuse_unplaceable(what: str, req: dict, nodes: list[NodeOffer]) -> None:
    """One line, before anything is submitted, when no alive node has the CPUs, GPUs and memory a task asks for."""
    if any(n.cpus >= req["num_cpus"] and n.gpus >= req["num_gpus"] and n.memory >= req["memory"] for n in nodes):
        return
    most = max(nodes, key=lambda n: (n.gpus, n.cpus, n.memory), default=None)
    has = (f"the largest node ({most.label}) has {most.cpus:g} CPUs, {most.gpus:g} GPUs and {most.memory / 1e9:.1f} GB"
           if most else "the cluster has no alive node")
    raise UserError(f"{what} needs {req['num_cpus']} logical CPUs, {req['num_gpus']} GPUs and "
                    f"{req['memory'] / 1e9:.1f} GB of memory, and no node of the Ray cluster has them ({has}): lower "
                    "--threads or --gpus, or add such a node")
