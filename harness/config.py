"""Run configuration: one frozen dataclass that every stage reads, resolved from (lowest first) the
defaults, a config file (`--config run.toml`, or a results.json whose run it repeats) and the command line.

A config file has the sections [run], [eval], [tasks], [awq] and [runtime."<name>"], with the options'
names as keys (`quantcompare compare --help` lists them; the `config` of any results.json is an example)."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core import registry
from core.errors import UserError
from core.options import as_plain, build
from core.profiles import profile_layer, profile_name
from core.settings import AwqRecipe, EvalSettings, RunOptions, TaskSettings

SECTIONS = {"run": RunOptions, "eval": EvalSettings, "tasks": TaskSettings, "awq": AwqRecipe}


@dataclass(frozen=True)
class RunConfig:
    model: str | None
    out: Path
    variants: tuple[str, ...] = ("fp16", "gguf-f16", "gguf-q4_k_m", "awq-int4")
    runtimes: tuple[str, ...] = ("transformers", "llama.cpp")
    eval: EvalSettings = field(default_factory=EvalSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    awq: AwqRecipe = field(default_factory=AwqRecipe)
    runtime_options: dict[str, Any] = field(default_factory=dict)  # runtime name -> its options dataclass
    calibration: Path | None = None
    eval_text: Path | None = None
    force: bool = False
    synthetic: str | None = None  # performance-only: a model of this shape with random weights (harness/synthetic.py)
    tokenizer_dir: Path | None = None  # tokenizer for the synthetic model (default: the embedded SmolLM2 one)
    notes: tuple[str, ...] = ()  # statements the run's report must carry (e.g. a runtime that could not be run)
    build_only: bool = False  # build the variants and stop
    trust_remote_code: bool = False  # accept a source with auto_map (its code is still not run)
    allow_pickle: bool = False  # read pickle .bin weights with torch's weights-only loader
    plugins: tuple[str, ...] = ()  # modules imported for more runtimes or quantizers
    sensitivity: bool = False  # measure tensor-group sensitivity first (harness/sensitivity.py)
    executor: str = "local"  # local | ray (harness/ray_executor.py)
    ray_address: str = "auto"
    profile: str = "quick"  # the counts the run measures with (core/profiles.py)

    def options(self, runtime: str):
        """A runtime's options (its defaults when the run set none)."""
        if runtime in self.runtime_options:
            return self.runtime_options[runtime]
        return registry.runtime(runtime).make_options()

    def as_sections(self) -> dict:
        """The resolved configuration, as a config file would state it (results.json keeps it)."""
        run = RunOptions(model=self.model, out=self.out, variants=self.variants, runtimes=self.runtimes,
                         calib=self.calibration, eval_text=self.eval_text, force=self.force,
                         synthetic_weights=self.synthetic, tokenizer=self.tokenizer_dir, notes=self.notes,
                         build_only=self.build_only, trust_remote_code=self.trust_remote_code,
                         allow_pickle=self.allow_pickle, plugins=self.plugins, sensitivity=self.sensitivity,
                         executor=self.executor, ray_address=self.ray_address, profile=self.profile)
        out = {"run": as_plain(run), "eval": as_plain(self.eval), "tasks": as_plain(self.tasks), "awq": as_plain(self.awq)}
        out["runtime"] = {r: as_plain(self.options(r)) for r in self.runtimes if registry.runtime(r).options}
        # "all windows" and "every document" are held as None but written as the 0 that asks for them:
        # None values are dropped below, and a dropped key would bring the default (48, 200) back
        for sec, key in (("eval", "windows"), ("tasks", "limit")):
            if out[sec].get(key) is None:
                out[sec][key] = 0
        return {k: {n: v for n, v in sec.items() if v is not None} if k != "runtime" else sec for k, sec in out.items()}


def slug(model: str | None) -> str:
    """The default run folder's name for a model."""
    if not model:
        return "smollm2-135m-instruct"
    name = Path(model.rstrip("/")).name if os.path.sep in model or os.path.exists(model) else model
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "model"


def read_config_file(path: Path) -> dict[str, dict]:
    """{section: {key: value}} of a TOML config, or the recorded configuration of a results.json."""
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read config '{path}': {e.strerror or e}") from None
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise UserError(f"'{path}' is not JSON: {e}") from None
        if not isinstance(doc, dict) or "config" not in doc:
            raise UserError(f"'{path}' holds no run configuration (results.json records one from schema 3 on)")
        data = doc["config"]
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"'{path}' is not valid TOML: {e}") from None
    return flatten_sections(data, str(path))


def flatten_sections(data: dict, where: str) -> dict[str, dict]:
    """[runtime."llama.cpp"] tables become the section "runtime.llama.cpp"; unknown sections are an error."""
    out: dict[str, dict] = {}
    if isinstance(data.get("models"), list):  # [[models]] tables, each with a model = "..." key
        bad = [m for m in data["models"] if not isinstance(m, dict) or not isinstance(m.get("model"), str)]
        if bad:
            raise UserError(f"{where}: each [[models]] table needs a model = \"path or hub id\" key")
        out.setdefault("run", {})["models"] = [m["model"] for m in data["models"]]
        data = {k: v for k, v in data.items() if k != "models"}
    for name, sec in data.items():
        if not isinstance(sec, dict):
            raise UserError(f"{where}: '{name}' must be a section ([{name}]), not a value")
        if name == "run" and "run" in out:
            out["run"] = {**dict(sec), **out["run"]}
        elif name == "runtime":
            for rt, opts in sec.items():  # runtime names are checked once plugins are loaded (resolve)
                out[f"runtime.{rt}"] = dict(opts)
        elif name in SECTIONS:
            out[name] = dict(sec)
        else:
            raise UserError(f"{where}: unknown section [{name}]; sections are {', '.join(SECTIONS)} and runtime.<name>")
    return out


def merge(*layers: dict[str, dict]) -> dict[str, dict]:
    """Later layers override earlier ones, key by key."""
    out: dict[str, dict] = {}
    for layer in layers:
        for sec, values in layer.items():
            out.setdefault(sec, {}).update(values)
    return out


def _check_names(kind: str, given: tuple[str, ...], known: list[str], hint: str) -> None:
    bad = [x for x in given if x not in known]
    if bad or not given:
        raise UserError(f"unknown {kind}(s) {', '.join(bad) or '(none)'}; choose from {hint}")


def resolve(sections: dict[str, dict]) -> RunConfig:
    """The run configuration from merged sections; one clear error for any value that cannot be used."""
    for sec in sections:
        if sec.startswith("runtime."):
            registry.runtime(sec[len("runtime."):])
    device = str(sections.get("eval", {}).get("device", "cpu"))
    profile = profile_name(sections.get("run", {}).get("profile"), device)
    sections = merge(profile_layer(profile), sections)  # the profile's counts, under the file's and the flags'
    run = build(RunOptions, sections.get("run", {}), "run")
    ev = build(EvalSettings, sections.get("eval", {}), "eval")
    tasks = build(TaskSettings, sections.get("tasks", {}), "tasks")
    awq = replace(build(AwqRecipe, sections.get("awq", {}), "awq"), device=ev.device)
    variants = run.variants or registry.default_variants()
    bad = [v for v in variants if not registry.is_variant(v)]
    if bad or not variants:
        raise UserError(f"unknown variant(s) {', '.join(bad) or '(none)'}; choose from `quantcompare list variants`")
    runtimes = run.runtimes or registry.default_runtimes()
    _check_names("runtime", runtimes, list(registry.runtimes()), ", ".join(registry.runtimes()))
    from evaluators.lm_eval_tasks import LOCAL_TASKS as SUPPORTED_TASKS

    bad = [t for t in tasks.tasks if t not in SUPPORTED_TASKS]
    if bad:
        raise UserError(f"unknown task(s) {', '.join(bad)}; available offline: {', '.join(SUPPORTED_TASKS)}")
    for f in (run.calib, run.eval_text):
        if f is not None and not f.is_file():
            raise UserError(f"file '{f}' does not exist")
    if ev.n_ctx < 16 or ev.prefill_tokens < 1 or ev.decode_tokens < 1 or ev.speed_repeats < 1:
        raise UserError("--n-ctx must be >= 16 and token counts/repeats >= 1")
    if ev.threads < 1:
        raise UserError("--threads must be 1 or more")
    if ev.gpus and ev.device == "cpu":
        raise UserError("--gpus needs --device cuda")
    if ev.gpus < 0:
        raise UserError("--gpus must be 0 (every visible GPU) or more")
    if run.synthetic_weights is not None:
        from harness.synthetic import SHAPES

        if run.synthetic_weights not in SHAPES:
            raise UserError(f"unknown synthetic shape '{run.synthetic_weights}' (choose from {', '.join(SHAPES)})")
        if run.model:
            raise UserError("--synthetic-weights and --model exclude each other")
    if run.tokenizer is not None and not (run.tokenizer / "tokenizer.json").is_file():
        raise UserError(f"'{run.tokenizer}' has no tokenizer.json")
    options = {r: registry.runtime(r).make_options(sections.get(f"runtime.{r}", {}))
               for r in registry.runtimes() if registry.runtime(r).options is not None}
    out = run.out or Path("runs") / (f"synthetic-{run.synthetic_weights}" if run.synthetic_weights else slug(run.model))
    return RunConfig(model=run.model, out=out, variants=tuple(variants), runtimes=tuple(runtimes), eval=ev, tasks=tasks,
                     awq=awq, runtime_options=options, calibration=run.calib, eval_text=run.eval_text, force=run.force,
                     synthetic=run.synthetic_weights, tokenizer_dir=run.tokenizer, notes=run.notes,
                     build_only=run.build_only, trust_remote_code=run.trust_remote_code, allow_pickle=run.allow_pickle,
                     plugins=run.plugins, sensitivity=run.sensitivity or any(v.startswith("gguf-mix") for v in variants),
                     executor=run.executor, ray_address=run.ray_address, profile=profile)

