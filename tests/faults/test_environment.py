"""Where the run writes: a folder it cannot create, a disk that fills up (a size-limited file, as
RLIMIT_FSIZE makes it), and the report's escaping of what users name."""
import json
import resource

import pytest

from tests.faults.helpers import assert_clean, compare, earlier_run, qc


def test_output_folder_that_cannot_be_created(tmp_path, tiny_llama):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    p = qc(["compare", "--model", str(tiny_llama), "--out", str(blocker / "run"), "--variants", "fp16"], tmp_path)
    assert_clean(p, "cannot create the output folder")


def _limit(nbytes):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


@pytest.mark.slow
def test_disk_full_while_writing_an_artifact(tmp_path, tiny_llama):
    out = earlier_run(tmp_path)
    p = compare(tiny_llama, out, tmp_path, "--variants", "fp16,gguf-f16", preexec=_limit(4_000_000))
    assert_clean(p, "ran out of disk space", out=out)
    assert not list((tmp_path / "store" / "artifacts").glob("gguf-f16*"))  # nothing half-written kept


@pytest.mark.slow
def test_disk_full_while_writing_results(tmp_path, tiny_llama):
    out = tmp_path / "run"
    first = compare(tiny_llama, out, tmp_path, "--variants", "fp16")
    assert first.returncode == 0, first.stderr[-2000:]
    before = (out / "results.json").read_bytes()
    p = compare(tiny_llama, out, tmp_path, "--variants", "fp16", "--note", "x" * 200, preexec=_limit(len(before) // 2))
    assert_clean(p, "no space left")
    assert (out / "results.json").read_bytes() == before and not list(out.glob("*.tmp"))


@pytest.mark.slow
def test_report_escapes_what_users_name(tmp_path, tiny_llama):
    from tests.faults.helpers import private_copy

    model = private_copy(tiny_llama, tmp_path, "evil<script>alert(1)<")
    out = tmp_path / "run"
    p = compare(model, out, tmp_path, "--variants", "fp16", "--note", "<script>alert('note')</script><img src=x onerror=1>")
    assert p.returncode == 0, p.stderr[-2000:]
    html = (out / "report.html").read_text()
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;" in html
    assert any(n.startswith("<script>") for n in json.loads((out / "results.json").read_text())["notes"])
