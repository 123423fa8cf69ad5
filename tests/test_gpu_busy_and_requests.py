"""The GPU-busy share of a cell's measures (nvidia-smi's utilization samples), and task requests carried to a
host without lm-eval."""
import json

import pytest

from core.errors import UserError
from core.settings import TaskSettings
from evaluators.cell_process import _busy_shares
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
