"""Models larger than one GPU (issue 15), where no multi-GPU machine is needed: the GPU plan and its fit
check, llama.cpp's split settings, and a tensor-parallel cell run as two processes on the CPU (gloo)
that scores the same windows as one process."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import UserError
from harness.gpu_plan import Shape, gpus_for, need_bytes, shape_of
from harness.gpu_plan import cell_gpus as gpu_plan_cell_gpus
from harness.synthetic import SHAPES

H200 = 143771 << 20
H100 = 80 << 30


def test_shapes_count_their_published_parameters():
    assert round(shape_of(SHAPES["qwen3-4b"]).n_params / 1e9, 2) == 4.02
    assert round(shape_of(SHAPES["qwen3-32b"]).n_params / 1e9, 1) == 32.8
    assert round(shape_of(SHAPES["llama-70b"]).n_params / 1e9, 1) == 70.6
    assert shape_of(SHAPES["llama-70b"]).tp_plan


def cell_gpus(runtime, shape, bpp, ctx, batch, pool, split_mode="layer", fmt="hf-safetensors"):
    """harness.gpu_plan.cell_gpus for a registered runtime, with llama.cpp's split mode as its option."""
    from core import registry

    info = registry.runtime(runtime)
    opts = info.make_options({"split_mode": split_mode}) if runtime == "llama.cpp" else info.make_options()
    return gpu_plan_cell_gpus(info, shape, bpp, ctx, batch, pool, opts, fmt)


def test_each_cell_gets_its_gpus_and_layout():
    s70, s32 = shape_of(SHAPES["llama-70b"]), shape_of(SHAPES["qwen3-32b"])
    # fp16 70B: 141 GB of weights needs two H200s; transformers splits it by tensor parallelism
    with pytest.raises(UserError, match="GPU memory"):
        cell_gpus("transformers", s70, 2.0, 641, 8, [H200])
    c = cell_gpus("transformers", s70, 2.0, 641, 8, [H200] * 4)
    assert (c.gpus, c.layout) == (4, "tensor-parallel")  # the whole pool, as asked
    # a dequantized reference cannot be sharded as a checkpoint: split by layer
    assert cell_gpus("transformers", s70, 2.0, 641, 8, [H200] * 2, fmt="hf-awq-gemm").layout == "layers"
    # INT4 through its kernel takes one GPU when it fits; llama.cpp follows --llama-split-mode
    assert cell_gpus("transformers-compiled", s70, 0.66, 641, 8, [H200] * 4, fmt="hf-awq-gemm").gpus == 1
    assert cell_gpus("llama.cpp", s32, 0.62, 641, 8, [H100] * 2, split_mode="row", fmt="gguf").layout == \
        "llama.cpp split by row"
    # the compiled decode is single-GPU: fp16 70B is an error there, not a silent split
    with pytest.raises(UserError, match="one GPU"):
        cell_gpus("transformers-compiled", s70, 2.0, 641, 8, [H100] * 4)
    # heads that do not divide by the GPU count fall back to layers
    odd = Shape(s32.n_params, s32.layers, kv_heads=8, head_dim=128, heads=64, tp_plan=True)
    assert cell_gpus("transformers", odd, 2.0, 641, 8, [H100] * 3).layout == "layers"


def test_memory_estimate_counts_weights_and_kv_cache():
    s = shape_of(SHAPES["qwen3-4b"])
    base = need_bytes(s, 2.0, 1, 1)
    # 36 layers x K and V x 8 heads x 128 x 2 bytes per token and sequence
    assert need_bytes(s, 2.0, 1001, 8) - base == 36 * 2 * 8 * 128 * 2 * (1001 * 8 - 1)
    assert gpus_for(base, [H100]) == 1 and gpus_for(10 * base, [H100] * 2) == 2 and gpus_for(20 * base, [H100] * 2) is None


def test_llama_cpp_split_settings(monkeypatch):
    llama_cpp = pytest.importorskip("llama_cpp")
    from evaluators.backends import make_runtime

    from core.cellspec import CellSpec

    spec = CellSpec(runtime="llama.cpp", device="cuda")
    rt = make_runtime(spec.with_(parallel={"gpus": 4}, options={"split_mode": "row"}))
    kw = rt.split_kwargs()
    assert kw == {"split_mode": llama_cpp.LLAMA_SPLIT_MODE_ROW, "main_gpu": 0, "tensor_split": [1.0] * 4}
    assert make_runtime(spec).split_kwargs() == {}
    with pytest.raises(UserError, match="split_mode"):
        make_runtime(spec.with_(options={"split_mode": "diagonal"}))


def test_gpus_option_needs_a_gpu_device(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "harness.cli", "compare", "--gpus", "2", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == ["quantcompare: error: --gpus needs --device cuda"]


def test_a_model_too_large_for_the_gpus_stops_before_anything_is_built(tmp_path, monkeypatch, capsys):
    """fp16 Llama-70B on one H200: one line, exit 2, no weights made (checked before the synthetic source)."""
    from harness import gpu_plan
    from harness.cli import main

    monkeypatch.setattr(gpu_plan, "visible_gpus", lambda: [H200])
    monkeypatch.setenv("QC_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["compare", "--synthetic-weights", "llama-70b", "--device", "cuda", "--gpus", "1", "--out",
                 str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "148.4 GB" in err[0] and "--gpus 2" in err[0], err
    assert not (tmp_path / "cache" / "models").exists()


class _Console:
    def progress(self, msg):
        pass


@pytest.mark.slow
def test_tensor_parallel_cell_scores_as_one_process(tiny_qwen3, tmp_path):
    """The same cell run as two torchrun processes (transformers' tp_plan, gloo) and as one: the same
    per-window NLL, the same greedy tokens; the result written once, by rank 0, with its layout."""
    from evaluators.windows import Windows
    from harness.cell_launcher import CellJob, run_cell

    rng = np.random.default_rng(0)
    win = Windows(rng.integers(3, 49000, size=(3, 64)).astype(np.int32), first=32, bos_id=None)
    win.save(tmp_path / "w.npz")
    from core.cellspec import CellSpec

    base = CellSpec(variant="fp16", runtime="transformers", format="hf-safetensors", artifact=str(tiny_qwen3),
                    windows=str(tmp_path / "w.npz"), n_ctx=64, threads=1, kld_top_k=16, prefill_tokens=32,
                    decode_tokens=4, speed_repeats=1, sanity_prompt_ids=[1, 200, 300, 400], sanity_new_tokens=6,
                    reference_dir=None, write_reference=False, seed=0)
    one = run_cell(CellJob("fp16", "transformers", base, "k1"), tmp_path / "one", _Console(), 600, 1)
    tp_spec = base.with_(parallel={"gpus": 2, "layout": "tensor-parallel"})
    two = run_cell(CellJob("fp16", "transformers", tp_spec, "k2"), tmp_path / "two", _Console(), 600, 1)
    assert one.ok and two.ok, (one.error, two.error)
    assert np.allclose(one.result["window_nll"], two.result["window_nll"], atol=1e-5)
    assert one.result["sanity_tokens"] == two.result["sanity_tokens"]
    assert two.result["parallel"] == {"gpus": 2, "layout": "tensor-parallel"}
    assert any("tensor parallel over 2 processes" in n and "gloo" in n for n in two.result["notes"])


def test_task_cells_run_where_their_quality_cells_run():
    """On a GPU run the lm-eval cell takes the quality cell's device and split; a CPU run's keys are unchanged."""
    from types import SimpleNamespace

    from core.cellspec import CellSpec
    from harness.cell_plan import CellPlanner

    req = SimpleNamespace(path="req.jsonl", sha256="abc")
    base = CellSpec(variant="fp16", runtime="transformers", format="hf-safetensors", artifact="m", n_ctx=512,
                    threads=4, seed=0, windows_sha256="w", prefill_tokens=64)
    cpu = CellPlanner.tasks(base, req)
    assert cpu.device == "cpu" and cpu.kind == "tasks" and cpu.windows_sha256 == "" and cpu.prefill_tokens == 512
    gpu = CellPlanner.tasks(base.with_(device="cuda", parallel={"gpus": 2, "layout": "tensor-parallel"}), req)
    assert gpu.device == "cuda" and gpu.parallel["gpus"] == 2
