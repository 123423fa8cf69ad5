"""Damaged cached artifacts are found on reuse, rebuilt, and never evaluated."""
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.faults.helpers import compare


def _ppl(out, variant, runtime="llama.cpp"):
    r = json.loads((out / "results.json").read_text())
    return next(x["value"] for x in r["rows"] if (x["variant"], x["runtime"], x["metric"]) == (variant, runtime, "ppl"))


def _slot(tmp_path, variant):
    (slot,) = [p for p in (tmp_path / "store" / "artifacts").iterdir() if p.name.startswith(variant + "-")]
    return slot


@pytest.fixture(scope="module")
def built_once(tmp_path_factory, tiny_llama):
    """One run of fp16 and gguf-f16 (its store and run folder); each test damages its own copy."""
    tmp = tmp_path_factory.mktemp("built")
    p = compare(tiny_llama, tmp / "a", tmp, "--variants", "fp16,gguf-f16")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return tmp


@pytest.fixture
def built(tmp_path, built_once):
    """A copy of that run's store and folder under this test's tmp_path (artifact links re-pointed to the copy)."""
    shutil.copytree(built_once / "store", tmp_path / "store", symlinks=True)
    shutil.copytree(built_once / "a", tmp_path / "a", symlinks=True)
    for link in (tmp_path / "a" / "artifacts").iterdir():
        if link.is_symlink():
            target = Path(os.readlink(link))
            link.unlink()
            link.symlink_to(tmp_path / "store" / target.relative_to(built_once / "store"))
    return tmp_path / "a"


@pytest.mark.slow
def test_truncated_gguf_in_the_cache_is_rebuilt(tmp_path, tiny_llama, built):
    f = next(_slot(tmp_path, "gguf-f16").glob("*.gguf"))
    with open(f, "r+b") as fh:
        fh.truncate(f.stat().st_size - 1000)
    p = compare(tiny_llama, tmp_path / "b", tmp_path, "--variants", "fp16,gguf-f16")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "[gguf-f16] cached artifact not trusted" in p.stdout and "truncated" in p.stdout
    assert "[gguf-f16] building" in p.stdout and _ppl(tmp_path / "b", "gguf-f16") == _ppl(built, "gguf-f16")


@pytest.mark.slow
def test_manifest_edited_by_hand_is_not_trusted(tmp_path, tiny_llama, built):
    m = _slot(tmp_path, "gguf-f16") / "manifest.json"
    doc = json.loads(m.read_text())
    doc["recipe"]["outtype"] = "q8_0"
    m.write_text(json.dumps(doc))
    p = compare(tiny_llama, tmp_path / "b", tmp_path, "--variants", "fp16,gguf-f16")
    assert p.returncode == 0 and "its manifest was edited" in p.stdout and "[gguf-f16] building" in p.stdout


@pytest.mark.slow
def test_cache_written_by_an_older_version_is_rebuilt(tmp_path, tiny_llama, built):
    m = _slot(tmp_path, "gguf-f16") / "manifest.json"
    doc = json.loads(m.read_text())
    for k in ("files", "manifest_sha256"):  # what this version's manifests carry and older ones lack
        doc.pop(k)
    m.write_text(json.dumps(doc))
    p = compare(tiny_llama, tmp_path / "b", tmp_path, "--variants", "fp16,gguf-f16")
    assert p.returncode == 0 and "written by another version" in p.stdout and "[gguf-f16] building" in p.stdout
    assert "[fp16] cached artifact reused" in p.stdout


@pytest.mark.slow
def test_file_changed_in_place_is_found_by_its_hash(tmp_path, tiny_llama, built):
    f = next(_slot(tmp_path, "gguf-f16").glob("*.gguf"))
    data = bytearray(f.read_bytes())
    data[-100] ^= 0xFF  # same size, other bytes
    f.write_bytes(bytes(data))
    p = compare(tiny_llama, tmp_path / "b", tmp_path, "--variants", "fp16,gguf-f16")
    assert p.returncode == 0 and "changed after it was built" in p.stdout
