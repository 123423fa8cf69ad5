from dataclasses import replace
from pathlib import Path

from harness.cell_launcher import cell_key
from core.settings import AwqRecipe
from quantizers.base import BuildContext, Manifest
from quantizers.fp16 import Fp16Quantizer
from quantizers.gguf import GgufTypeQuantizer
from quantizers.registry import make_quantizers


class _Src:
    sha256 = "a" * 64


def _ctx(src=_Src(), upstream=None):
    return BuildContext(source=src, upstream=upstream or {}, calibration=Path("x"), threads=2)


def _manifest(key):
    return Manifest("gguf-f16", "gguf", "m.gguf", "t", {}, {}, "s", key, 0.0, 1)


def test_quantizer_key_depends_on_source_recipe_tools_and_upstream(monkeypatch):
    q = Fp16Quantizer()
    k1 = q.cache_key(_ctx())
    other = _Src()
    other.sha256 = "b" * 64
    assert q.cache_key(_ctx(other)) != k1
    assert q.cache_key(_ctx()) == k1  # deterministic
    monkeypatch.setattr(q, "tool_versions", lambda: {"safetensors": "0.0-other"})
    assert q.cache_key(_ctx()) != k1
    g = GgufTypeQuantizer("q4_k_m")
    monkeypatch.setattr(g, "tool_versions", lambda: {"llama_cpp_python": "x"})
    a = g.cache_key(_ctx(upstream={"gguf-f16": (Path("."), _manifest("k1"))}))
    b = g.cache_key(_ctx(upstream={"gguf-f16": (Path("."), _manifest("k2"))}))
    assert a != b


def test_cell_key_ignores_paths_but_not_settings():
    from dataclasses import fields

    from core.cellspec import CellSpec

    spec = CellSpec(variant="fp16", runtime="transformers", n_ctx=512, artifact="/a", windows="/w", reference_dir="/r")
    k = cell_key(spec, "art", "code")
    assert cell_key(spec.with_(artifact="/elsewhere", windows="/w2", reference_dir="/r2"), "art", "code") == k
    assert cell_key(spec.with_(n_ctx=256), "art", "code") != k
    assert cell_key(spec.with_(options={"flash_attn": "on"}), "art", "code") != k
    assert cell_key(spec, "art2", "code") != k
    # every field says whether it is keyed, and the paths are not
    unkeyed = {f.name for f in fields(CellSpec) if not f.metadata["key"]}
    assert {"artifact", "windows", "reference_dir", "task_requests", "tokenizer_dir", "hf_config_dir"} <= unkeyed
    assert {"variant", "runtime", "n_ctx", "kld_top_k", "options", "windows_sha256", "device"} <= set(spec.cache_fields())
    assert cell_key(spec, "art", "code2") != k


def test_awq_recipe_changes_key():
    assert AwqRecipe().as_dict() != replace(AwqRecipe(), q_group_size=64).as_dict()


def test_gguf_variant_names_and_build_order():
    import quantizers  # noqa: F401  (registers the variants)
    from core.registry import is_variant
    from quantizers.gguf import parse_gguf_variant

    assert parse_gguf_variant("gguf-q2_k-imatrix") == ("q2_k", True)
    assert parse_gguf_variant("gguf-q8_0") == ("q8_0", False)
    assert parse_gguf_variant("gguf-iq2_xs") is None  # i-quants need an importance matrix
    assert parse_gguf_variant("gguf-q4_k_x") is None and not is_variant("gguf-q4_k_x")
    names = [q.variant for q in make_quantizers(("gguf-q2_k-imatrix", "gguf-q8_0"), AwqRecipe())]
    assert names == ["fp16", "gguf-f16", "gguf-imatrix", "gguf-q2_k-imatrix", "gguf-q8_0"]


def test_imatrix_variant_key_follows_the_imatrix(monkeypatch):
    q = GgufTypeQuantizer("q2_k", imatrix=True)
    monkeypatch.setattr(q, "tool_versions", lambda: {"llama_cpp_python": "x"})
    im1 = Manifest("gguf-imatrix", "imatrix", "imatrix.gguf", "t", {}, {"sha256": "1"}, "s", "i1", 0.0, 1)
    im2 = Manifest("gguf-imatrix", "imatrix", "imatrix.gguf", "t", {}, {"sha256": "2"}, "s", "i2", 0.0, 1)
    up = {"gguf-f16": (Path("."), _manifest("k1"))}
    a = q.cache_key(_ctx(upstream={**up, "gguf-imatrix": (Path("."), im1)}))
    b = q.cache_key(_ctx(upstream={**up, "gguf-imatrix": (Path("."), im2)}))
    assert a != b


def test_a_plugin_runtimes_own_source_is_in_its_cell_key(tmp_path, monkeypatch):
    """Edit a --plugins runtime and its old results are not reused; built-in runtimes are keyed by evaluators/."""
    import importlib
    import sys

    from core import registry
    from core.cellspec import CellSpec

    mod = tmp_path / "qc_keyed_plugin.py"
    body = ("from core.registry import register_runtime\nfrom evaluators.backends.base import Runtime\n"
            "@register_runtime('keyed-plugin', formats=('hf-safetensors',))\nclass K(Runtime):\n    VALUE = {v}\n")
    mod.write_text(body.format(v=1))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("harness.cell_launcher.measurement_identity", lambda spec: {})
    try:
        importlib.import_module("qc_keyed_plugin")
        spec = CellSpec(variant="fp16", runtime="keyed-plugin", n_ctx=512, artifact="/a", windows="/w")
        k1 = cell_key(spec, "art", "code")
        assert cell_key(spec, "art", "code") == k1
        mod.write_text(body.format(v=2))  # the plugin's code changes, nothing else does
        assert cell_key(spec, "art", "code") != k1
        assert registry.plugin_source_sha256(registry.runtime("transformers").cls) is None
    finally:
        registry._RUNTIMES.pop("keyed-plugin", None)
        sys.modules.pop("qc_keyed_plugin", None)


def test_a_cell_run_without_its_fp16_reference_is_stored_under_a_key_of_its_own(monkeypatch, tmp_path):
    """fp16 fails: the cells after it run without KLD, and a later run with a sound fp16 must not reuse them."""
    from types import SimpleNamespace

    from core.cellspec import CellSpec
    from harness import cell_runs
    from harness.cell_launcher import CellJob, CellOutcome

    ref = CellJob("fp16", "transformers", CellSpec(variant="fp16", runtime="transformers", reference_dir="/r",
                                                   write_reference=True), "kref")
    dep = CellJob("gguf-q4_k_m", "llama.cpp", CellSpec(variant="gguf-q4_k_m", runtime="llama.cpp",
                                                       reference_dir="/r"), "kdep")
    ran = []
    monkeypatch.setattr(cell_runs, "load_cached", lambda cells_dir, job: None)
    monkeypatch.setattr(cell_runs, "run_group", lambda jobs, *a: [ran.append((job.variant, job.key)) or CellOutcome(
        job.variant, job.runtime, ok=job.variant != "fp16", error=None if job.variant != "fp16" else "crashed")
        for job in jobs])
    cfg = SimpleNamespace(force=False, eval=SimpleNamespace(threads=1))
    cell_runs.evaluate([ref, dep], tmp_path, cfg, SimpleNamespace(line=lambda *a: None, alarm=lambda *a: None))
    assert dep.spec.reference_dir is None
    assert ran == [("fp16", "kref"), ("gguf-q4_k_m", cell_runs.without_reference_key("kdep"))]
    assert cell_runs.without_reference_key("kdep") != "kdep"
