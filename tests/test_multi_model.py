"""Several models in one invocation: how the command line names them, where each run goes, the summary page."""
from pathlib import Path

import pytest

from core.errors import UserError
from harness.cli import models_given
from harness.config import resolve
from harness.multi_model import model_configs, summary, summary_html


def test_repeated_model_flags_and_the_config_list():
    assert models_given(["compare", "--model", "a", "--model=b/c"], {}) == ["a", "b/c"]
    assert models_given(["compare"], {"run": {"models": ["x", "y"]}}) == ["x", "y"]
    assert models_given(["compare", "--model", "a"], {"run": {"models": ["x", "y"]}}) == ["a"]


def test_each_model_gets_its_own_folder_and_two_may_not_share_one(tmp_path):
    cfg = resolve({"run": {"out": str(tmp_path)}})
    a, b = model_configs(cfg, ["org/model-a", "/models/model-b"])
    assert (a.model, a.out, b.out) == ("org/model-a", tmp_path / "model-a", tmp_path / "model-b")
    with pytest.raises(UserError, match="share the folder"):
        model_configs(cfg, ["/x/m", "/y/m"])


def test_summary_names_each_verdict_and_escapes_names(tmp_path):
    cfg = resolve({"run": {"out": str(tmp_path)}})
    configs = model_configs(cfg, ["<b>evil</b>", "fine"])
    (tmp_path / "fine").mkdir()
    (tmp_path / "fine" / "verdict.json").write_text('{"variants": {"gguf-q4_k_m": "pass", "gguf-q2_k": "fail"}}')
    (tmp_path / "fine" / "report.html").write_text("<html></html>")
    doc = summary(tmp_path, configs, {"<b>evil</b>": 2, "fine": 1}, {"<b>evil</b>": "not a model"})
    fine = doc["models"][1]
    assert fine["verdict_source"] == "gate" and fine["verdicts"] == {"gguf-q4_k_m": "PASS", "gguf-q2_k": "FAIL"}
    assert fine["report"] == "fine/report.html" and doc["models"][0]["report"] is None
    page = summary_html(doc)
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page and 'href="fine/report.html"' in page
    assert "not a model" in page and "exit 1" in page


def test_models_tables_in_a_config_file(tmp_path):
    from harness.config import read_config_file

    f = tmp_path / "run.toml"
    f.write_text('[run]\nvariants = ["fp16"]\n\n[[models]]\nmodel = "org/a"\n\n[[models]]\nmodel = "/m/b"\n')
    sections = read_config_file(f)
    assert sections["run"] == {"variants": ["fp16"], "models": ["org/a", "/m/b"]}
    assert models_given(["compare", "--config", str(f)], sections) == ["org/a", "/m/b"]
    f.write_text('[[models]]\npath = "x"\n')
    with pytest.raises(UserError, match="model ="):
        read_config_file(f)


def test_the_local_executor_never_imports_ray():
    import subprocess
    import sys

    code = ("import sys, harness.cli, harness.pipeline, harness.cell_runs, harness.variants, harness.sensitivity, "
            "harness.multi_model; assert 'ray' not in sys.modules, 'ray imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-1000:]


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_model_whose_run_crashes_fails_the_invocation_and_the_others_go_on(tmp_path, executor):
    from dataclasses import replace

    from harness.multi_model import run_models

    cfg = replace(resolve({"run": {"out": str(tmp_path)}}), executor=executor)
    ran = []

    class _Console:
        def __init__(self):
            self.lines = []

        def line(self, msg):
            self.lines.append(msg)

        alarm = line

    def run_one(c, console):
        ran.append(c.model)
        if c.model == "broken":
            raise RuntimeError("a bug in one model's run")
        return 0

    code = run_models(cfg, ["broken", "fine"], run_one, lambda c: _Console())
    assert code == 1 and sorted(ran) == ["broken", "fine"]
    import json

    doc = json.loads((tmp_path / "summary.json").read_text())
    by = {m["model"]: m for m in doc["models"]}
    assert by["broken"]["exit_code"] == 1 and "RuntimeError" in by["broken"]["error"] and by["fine"]["exit_code"] == 0
