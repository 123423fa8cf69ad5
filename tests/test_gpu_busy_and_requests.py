"""The GPU-busy share of a cell's measures (nvidia-smi's utilization samples), and task requests carried to a
host without lm-eval."""
import json

import pytest

from core.errors import UserError
from core.settings import TaskSettings
from evaluators.gpu_memory import busy_shares as _busy_shares
from evaluators.gpu_memory import GpuMemorySampler, _parse
from evaluators.lm_eval_tasks import TaskRequests, export_requests, load_requests


def test_nvidia_smi_lines_parse_with_and_without_utilization():
    assert _parse("1234, 87") == (1234, 87.0)
    assert _parse("1234, [N/A]") == (1234, None)


def test_busy_share_is_the_mean_of_the_samples_inside_each_span():
    s = GpuMemorySampler.__new__(GpuMemorySampler)
    s.busy = [(0.5, 0.0), (1.5, 100.0), (2.5, 50.0), (3.5, 100.0)]
    assert s.busy_share(1.0, 3.0) == 0.75
    assert s.busy_share(10.0, 11.0) is None
    other = GpuMemorySampler.__new__(GpuMemorySampler)
    other.busy = [(1.5, 0.0)]
    shares = _busy_shares([s, other], {"windows": [1.0, 2.0], "idle": [5.0, 6.0]})
    assert shares == {"windows": 0.5, "idle": None}  # two GPUs: 100% and 0% -> 50%


def test_exported_requests_load_only_for_their_settings(tmp_path):
    blob = tmp_path / "r.json"
    blob.write_text(json.dumps([[[1, 2], [3]], [[1], [4, 5]]]))
    settings = TaskSettings(tasks=("piqa",), limit=7)
    export_requests(TaskRequests(settings, [("a", "b"), ("c", "d")], blob, "f" * 64), tmp_path / "export.json")
    got = load_requests(settings, tmp_path / "export.json", tmp_path / "work")
    assert got.pairs == [("a", "b"), ("c", "d")] and got.sha256 == "f" * 64
    assert json.loads(got.path.read_text()) == [[[1, 2], [3]], [[1], [4, 5]]]
    with pytest.raises(UserError, match="built for"):
        load_requests(TaskSettings(tasks=("piqa",), limit=8), tmp_path / "export.json", tmp_path / "work")
    with pytest.raises(UserError, match="cannot read"):
        load_requests(settings, tmp_path / "missing.json", tmp_path / "work")


def test_row_reductions_on_the_device_match_the_cpu_path():
    """rows_on_gpu (run here on torch's CPU device: the same code) against the numpy normalizers and top-k."""
    import numpy as np

    from evaluators.kld import RowLogprobs, TopK, kld_topk, rows_on_gpu

    x = np.random.default_rng(0).normal(size=(40, 3000)).astype(np.float32) * 4
    ref = RowLogprobs.from_logits(x)
    got = rows_on_gpu(x, top_k=16, device="cpu")
    assert np.allclose(got.lse, ref.lse, rtol=0, atol=1e-5)
    want = TopK.from_rows(ref, 16)
    have = TopK.from_rows(got, 16)  # taken from the rows' own top-k
    assert np.array_equal(have.ids, got.top.ids[:, :16])
    assert np.array_equal(have.ids, want.ids) and np.allclose(have.logp, want.logp, atol=1e-5)
    part = got.rows(5, 9)
    assert part.logits.shape == (4, 3000) and np.array_equal(part.top.ids, got.top.ids[5:9])
    assert np.allclose(kld_topk(want, got), kld_topk(want, ref), atol=1e-6)


def test_a_torch_runtime_keeps_its_logits_on_the_device_for_the_row_reductions(tiny_qwen3):
    """The GPU path of TorchDecodeMixin.row_logprobs, run on the CPU device: the rows and their top-k are those of
    the logits the runtime returns."""
    import numpy as np

    from evaluators.backends.transformers_backend import TransformersRuntime
    from evaluators.kld import RowLogprobs, TopK

    rt = TransformersRuntime()
    rt.load(tiny_qwen3, "hf-safetensors", 2, 256)
    ids = np.asarray([1, 5, 9, 200, 31, 7, 7, 12])
    want = RowLogprobs.from_logits(rt.logits(ids, keep_from=3))
    rt._rows_on_device = lambda: True
    got = rt.row_logprobs(ids, keep_from=3, top_k=8)
    assert np.allclose(got.logits, want.logits) and np.allclose(got.lse, want.lse, atol=1e-5)
    assert np.array_equal(got.top.ids, TopK.from_rows(want, 8).ids)
