"""Adding a runtime is one module. This file is that module: it registers a runtime with an option of its own,
and the tests run it end to end through the CLI (`--plugins tests.test_plugin_runtime`), set its option from
the command line and from a run.toml, and repeat the run from its results.json."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.options import opt
from core.registry import register_runtime
from evaluators.backends.base import Generation, Runtime

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class FlatOptions:
    """flat runtime (a test runtime: every token equally likely but one)"""

    favourite: int = opt(0, "the token whose logit is raised")
    boost: float = opt(0.0, "how much its logit is raised")


@register_runtime("flat", formats=("hf-safetensors",), options=FlatOptions, prefix="flat-",
                  summary="a test runtime: uniform logits but one")
class FlatRuntime(Runtime):
    """Reads only the vocabulary size of a checkpoint: PPL is known in closed form."""

    @classmethod
    def from_spec(cls, spec, options: FlatOptions) -> "FlatRuntime":
        return cls(options)

    def __init__(self, options: FlatOptions) -> None:
        self.options, self.notes, self.vocab = options, [], 0

    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        self.vocab = int(json.loads((artifact / "config.json").read_text())["vocab_size"])

    def logits(self, ids: np.ndarray, keep_from: int = 0) -> np.ndarray:
        out = np.zeros((len(ids) - keep_from, self.vocab), dtype=np.float32)
        out[:, self.options.favourite] = self.options.boost
        return out

    def generate(self, prompt: list[int], n_new: int) -> Generation:
        t0 = time.perf_counter()
        # the first token comes from the prefill, then n_new decode steps (evaluators.backends.base.Runtime.generate)
        return Generation([self.options.favourite] * (n_new + 1), time.perf_counter() - t0 + 1e-6, 1e-6 * max(n_new, 1), n_new)

    def versions(self) -> dict[str, str]:
        return {"flat": "1"}


def _cli(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(out.parent / "store"))
    return subprocess.run([sys.executable, "-m", "harness.cli", "compare", "--out", str(out), *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)


def _flat_ppl(results: dict) -> float:
    return next(r["value"] for r in results["rows"] if (r["variant"], r["runtime"], r["metric"]) == ("fp16", "flat", "ppl"))


@pytest.mark.slow
def test_a_runtime_registered_in_one_file_runs_end_to_end(tiny_llama, tmp_path):
    vocab = json.loads((tiny_llama / "config.json").read_text())["vocab_size"]
    args = ["--model", str(tiny_llama), "--variants", "fp16", "--runtimes", "transformers,flat",
            "--plugins", "tests.test_plugin_runtime", "--tasks", "none", "--windows", "2", "--n-ctx", "64",
            "--prefill-tokens", "16", "--decode-tokens", "4", "--speed-repeats", "1", "--gen-prompts", "2", "--gen-tokens", "4", "--instructions", "0"]
    # the runtime's options come from the command line ...
    p = _cli(tmp_path / "a", *args, "--flat-boost", "2.0", "--flat-favourite", "7")
    assert p.returncode in (0, 1), p.stdout[-2000:] + p.stderr[-2000:]
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    cell = next(c for c in results["cells"] if c["runtime"] == "flat")
    assert cell["status"] == "ok", cell
    assert results["config"]["runtime"]["flat"] == {"favourite": 7, "boost": 2.0}
    # every other token has probability 1 / (vocab - 1 + e^2): the scored targets are never token 7
    ppl = _flat_ppl(results)
    assert math.isclose(ppl, vocab - 1 + math.exp(2.0), rel_tol=1e-3)
    # ... from a run.toml, with the command line overriding it key by key ...
    toml = tmp_path / "run.toml"
    toml.write_text('[run]\nplugins = ["tests.test_plugin_runtime"]\n[eval]\nwindows = 2\n\n'
                    '[runtime.flat]\nboost = 0.0\nfavourite = 3\n')
    p = _cli(tmp_path / "b", "--config", str(toml), *[a for a in args if a != "--plugins" and a != "tests.test_plugin_runtime"],
             "--flat-favourite", "5")
    assert p.returncode in (0, 1), p.stdout[-2000:] + p.stderr[-2000:]
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert b["config"]["runtime"]["flat"] == {"favourite": 5, "boost": 0.0}
    assert math.isclose(_flat_ppl(b), vocab, rel_tol=1e-4)  # uniform: PPL is the vocabulary size
    # ... and a finished run repeats from its results.json: the same configuration, every cell reused
    p = _cli(tmp_path / "b", "--config", str(tmp_path / "b" / "results.json"))
    assert p.returncode in (0, 1), p.stdout[-2000:] + p.stderr[-2000:]
    assert p.stdout.count("cached result reused") == 4, p.stdout[-2000:]  # 2 quality, 2 long-window cells
    again = json.loads((tmp_path / "b" / "results.json").read_text())
    assert again["config"] == b["config"] and _flat_ppl(again) == _flat_ppl(b)


def test_config_errors_are_one_line(tmp_path, capsys):
    from harness.cli import main

    bad = tmp_path / "bad.toml"
    for text, expect in (("[evaluation]\nn_ctx = 5\n", "unknown section [evaluation]"),
                         ("[eval]\nn_ctxx = 5\n", "[eval] has no option n_ctxx"),
                         ("[eval]\nn_ctx = 'many'\n", "n_ctx: 'many' is not an integer"),
                         ("[runtime.nope]\nx = 1\n", "unknown runtime 'nope'"),
                         ('[runtime."llama.cpp"]\nflash_attn = "maybe"\n', "flash_attn = 'maybe': choose from off, on"),
                         ("[eval\n", "is not valid TOML")):
        bad.write_text(text)
        assert main(["compare", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2, text
        assert expect in capsys.readouterr().err, text
    assert not (tmp_path / "o").exists()


def test_registries_list_what_exists(capsys):
    from harness.cli import main

    assert main(["list", "runtimes"]) == 0
    out = capsys.readouterr().out
    assert "transformers (default)" in out and "llama.cpp (default)" in out and "vllm" in out
    assert main(["list", "variants"]) == 0
    out = capsys.readouterr().out
    assert "gguf-q4_k_m" in out and "awq-int4" in out and "gguf-imatrix " not in out
    assert main(["list", "tasks"]) == 0
    assert "piqa" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("quantcompare ")
