"""On one host a pair's cells run in one subprocess (harness/cell_runs.py: pair_groups, evaluate), and a cell loses its
fp16 reference only when the reference it reads failed: a failed long-window reference leaves every cell of the
windows its KLD."""
from dataclasses import dataclass

from core.cellspec import CellSpec
from harness import cell_runs
from harness.cell_launcher import CellJob, CellOutcome


@dataclass
class _Cfg:
    force: bool = True
    executor: str = "local"

    class eval:  # noqa: N801 - what run_jobs reads of the settings
        threads = 1


class _Console:
    def __init__(self):
        self.lines = []

    def line(self, msg):
        self.lines.append(msg)

    alarm = progress = line


def _job(variant, runtime, kind, ref, write=False):
    spec = CellSpec(variant=variant, runtime=runtime, format="f", kind=kind, reference_dir=ref, write_reference=write)
    return CellJob(variant, runtime, spec, f"{variant}-{runtime}-{kind}")


def _jobs():
    return [_job("fp16", "transformers", "quality", "/r/win", True), _job("gguf", "llama.cpp", "quality", "/r/win"),
            _job("fp16", "transformers", "tasks", None), _job("gguf", "llama.cpp", "tasks", None),
            _job("fp16", "transformers", "long", "/r/long", True), _job("gguf", "llama.cpp", "long", "/r/long")]


def test_a_pairs_cells_run_together_the_reference_pair_first():
    groups = cell_runs.pair_groups(_jobs())
    assert groups == [[0, 2, 4], [1, 3, 5]]


def test_a_failed_long_reference_strips_only_the_long_cells(monkeypatch):
    ran = []

    def fake_run_jobs(jobs, cells_dir, cfg, console):
        ran.append([(j.variant, j.kind, j.spec.reference_dir) for j in jobs])
        return [CellOutcome(j.variant, j.runtime, not (j.variant == "fp16" and j.kind == "long"), kind=j.kind)
                for j in jobs]

    monkeypatch.setattr(cell_runs, "run_jobs", fake_run_jobs)
    jobs = _jobs()
    out = cell_runs.evaluate(jobs, None, _Cfg(), _Console())
    assert [o.ok for o in out] == [True, True, True, True, False, True]
    assert len(ran) == 2 and len(ran[0]) == 3  # one process per pair
    gguf = {kind: ref for _, kind, ref in ran[1]}
    assert gguf["quality"] == "/r/win"  # the window reference was written: its KLD stays
    assert gguf["long"] is None  # the long reference failed: measured without it, under a key of its own
    assert jobs[5].key != "gguf-llama.cpp-long" and jobs[1].key == "gguf-llama.cpp-quality"
