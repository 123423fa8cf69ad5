"""Bad data: calibration and evaluation text, gate policies."""
import json

from tests.faults.helpers import assert_clean, earlier_run, qc
from tests.gate_fixtures import make_results


def _calib(tmp_path, tiny_llama, content: bytes):
    f = tmp_path / "calib.txt"
    f.write_bytes(content)
    out = earlier_run(tmp_path)
    return qc(["compare", "--model", str(tiny_llama), "--out", str(out), "--variants", "fp16,awq-int4",
               "--calib", str(f)], tmp_path), out


def test_empty_calibration_file(tmp_path, tiny_llama):
    p, out = _calib(tmp_path, tiny_llama, b"\n\n")
    assert_clean(p, "holds no text", out=out)


def test_binary_calibration_file(tmp_path, tiny_llama):
    p, out = _calib(tmp_path, tiny_llama, bytes(range(256)) * 10)
    assert_clean(p, "is binary", out=out)


def test_calibration_shorter_than_one_sample(tmp_path, tiny_llama):
    p, out = _calib(tmp_path, tiny_llama, b"Just a few words.\n")
    assert_clean(p, "fewer than one calibration sample", out=out)


def test_calibration_jsonl_without_text(tmp_path, tiny_llama):
    p, out = _calib(tmp_path, tiny_llama, b'{"content": "no text field"}\n')
    assert_clean(p, "not a JSON object with a 'text' field", out=out)


def test_calibration_that_overlaps_the_evaluation_text(tmp_path, tiny_llama):
    """A variant calibrated on the text it is scored on is measured on what it was fitted to: refused."""
    from core.paths import WIKITEXT_TEST

    paragraphs = [line.strip() for line in WIKITEXT_TEST.read_text().splitlines() if len(line.strip()) > 400]
    other = "An unrelated sentence about calibration, long enough to count as a passage of its own here. " * 40
    p, out = _calib(tmp_path, tiny_llama, (other + "\n" + paragraphs[3] + "\n").encode())
    assert_clean(p, "overlaps the evaluation text", out=out)


def test_evaluation_text_shorter_than_one_window(tmp_path, tiny_llama):
    f = tmp_path / "eval.txt"
    f.write_text("A short text.")
    out = earlier_run(tmp_path)
    p = qc(["compare", "--model", str(tiny_llama), "--out", str(out), "--variants", "fp16", "--eval-text", str(f)],
           tmp_path)
    assert_clean(p, "evaluation text")
    assert json.loads((out / "results.json").read_text()) == {"earlier": True}


def test_policy_that_is_not_toml(tmp_path):
    r = tmp_path / "results.json"
    r.write_text(json.dumps(make_results({"gguf-q8_0": {"kld": 0.01}})))
    pol = tmp_path / "p.toml"
    pol.write_text("{ this is json, not toml }")
    assert_clean(qc(["gate", str(r), "--policy", str(pol)], tmp_path), "is not valid TOML")


def test_policy_with_an_unknown_metric(tmp_path):
    r = tmp_path / "results.json"
    r.write_text(json.dumps(make_results({"gguf-q8_0": {"kld": 0.01}})))
    pol = tmp_path / "p.toml"
    pol.write_text('policy_version = 1\n[variants."*"]\nmax_wer = 0.1\n')
    assert_clean(qc(["gate", str(r), "--policy", str(pol)], tmp_path), "unknown limit 'max_wer'")
