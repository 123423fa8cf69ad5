"""Results are keyed to the machine and libraries that made them: a store shared between hosts never
hands one host's measurement to another as its own."""
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from core.cellspec import CellSpec
from harness import host
from harness.cell_launcher import cell_key
from quantizers.base import BuildContext
from quantizers.gguf import GgufTypeQuantizer

AVX2 = {"hostname": "runner-a", "cpu_model": "Test CPU 1", "cpu_isa": ["avx", "avx2", "fma"], "cpu_logical": 2}
AVX512 = {**AVX2, "hostname": "runner-b", "cpu_isa": ["avx", "avx2", "fma", "avx512f", "avx512bw"]}
TWIN = {**AVX2, "hostname": "runner-c"}  # another machine of the same kind
OTHER_CPU = {**AVX2, "hostname": "runner-d", "cpu_model": "Test CPU 2"}  # same instruction sets, another CPU


def _as(monkeypatch, ident: dict | None):
    if ident is None:
        monkeypatch.delenv("QC_HOST_IDENTITY", raising=False)
    else:
        monkeypatch.setenv("QC_HOST_IDENTITY", json.dumps(ident))
    host.this_host.cache_clear()


SPEC = CellSpec(variant="gguf-q4_k_m", runtime="llama.cpp", n_ctx=512, artifact="/a", windows="/w")
TASK = SPEC.with_(kind="tasks")


def test_quality_keys_follow_the_device_class_speed_keys_the_host(monkeypatch):
    keys = {}
    for name, ident in (("a", AVX2), ("b", AVX512), ("c", TWIN), ("d", OTHER_CPU)):
        _as(monkeypatch, ident)
        keys[name] = (cell_key(SPEC, "art", "code"), cell_key(TASK, "art", "code"),
                      cell_key(SPEC.with_(speed=False), "art", "code"))
    _as(monkeypatch, None)
    assert keys["a"][0] != keys["b"][0] and keys["a"][1] != keys["b"][1]  # AVX2 vs AVX-512: all differ
    assert keys["a"] == keys["c"]  # a twin machine shares everything
    assert keys["a"][0] != keys["d"][0]  # a timed cell is the host's own
    assert keys["a"][1:] == keys["d"][1:]  # untimed cells go by instruction sets


def test_cell_key_follows_the_runtime_environment(monkeypatch):
    _as(monkeypatch, AVX2)
    k = cell_key(SPEC, "art", "code")
    real = host.environment_fingerprint

    monkeypatch.setattr("harness.cell_launcher.environment_fingerprint", lambda py: {**real(py), "sha256": "another torch"})
    assert cell_key(SPEC, "art", "code") != k
    _as(monkeypatch, None)


def test_device_dependent_artifacts_are_keyed_by_device_class(monkeypatch):
    class Src:
        sha256 = "a" * 64

    ctx = BuildContext(source=Src(), upstream={}, calibration=Path("x"), threads=2, device_class="cpu:x86_64:avx2")
    other = replace(ctx, device_class="cpu:x86_64:avx2+avx512f")
    g = GgufTypeQuantizer("q4_k_m")
    monkeypatch.setattr(g, "tool_versions", lambda: {"llama_cpp_python": "x"})
    assert g.cache_key(ctx) == g.cache_key(other)  # llama-quantize writes the same bytes anywhere
    from quantizers.awq_int4 import AwqQuantizer
    from core.settings import AwqRecipe

    a = AwqQuantizer(AwqRecipe())
    monkeypatch.setattr(a, "tool_versions", lambda: {"autoawq": "0.2.9"})
    monkeypatch.setattr(a, "recipe", lambda c: {"w_bit": 4})
    assert a.cache_key(ctx) != a.cache_key(other)


@pytest.mark.slow
def test_two_stores_two_hosts(tmp_path, tiny_llama):
    from tests.faults.helpers import compare

    args = ("--variants", "fp16,gguf-q8_0")
    a = compare(tiny_llama, tmp_path / "run-a", tmp_path, *args, QC_HOST_IDENTITY=json.dumps(AVX2))
    assert a.returncode == 0, a.stdout[-2000:] + a.stderr[-2000:]
    store_a = tmp_path / "store"

    def on(store_copy: str, ident: dict, out: str):
        shutil.copytree(store_a, tmp_path / store_copy)  # the cache carried to another runner
        p = compare(tiny_llama, tmp_path / out, tmp_path, *args, QC_HOST_IDENTITY=json.dumps(ident),
                    QC_STORE_DIR=tmp_path / store_copy)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        return p, json.loads((tmp_path / out / "results.json").read_text())

    p, r = on("store-b", AVX512, "run-b")  # other instruction sets: nothing measured is reused
    assert "cached result reused" not in p.stdout and "[gguf-q8_0] cached artifact reused" in p.stdout
    assert all(c["measured_on"]["hostname"] == "runner-b" and c["measured_here"] for c in r["cells"])
    p, r = on("store-c", TWIN, "run-c")  # a twin machine: reused, and shown as measured on runner-a
    assert "cached result reused" in p.stdout and "measured on runner-a" in p.stdout
    assert all(c["measured_on"]["hostname"] == "runner-a" and not c["measured_here"] for c in r["cells"])
    assert "measured on runner-a" in (tmp_path / "run-c" / "report.html").read_text()
    p, r = on("store-d", OTHER_CPU, "run-d")  # same instruction sets, another CPU: its speed is its own
    assert not [ln for ln in p.stdout.splitlines() if ln.startswith("[eval]") and "cached result reused" in ln]
    # long-window cells time nothing: their figures hold on any CPU with the same instruction sets
    assert [ln for ln in p.stdout.splitlines() if ln.startswith("[long]") and "cached result reused" in ln]
    assert all(c["measured_on"]["hostname"] == "runner-d" for c in r["cells"])
