"""Several models in one invocation (`--model` repeated, or `models = [...]` in a config file's [run]): each model
gets the run it would get alone, in OUT/<model-slug>/ with its own results.json, report.html (and verdict with
--gate); OUT/index.html and OUT/summary.json link them, each with its verdict. With --executor ray the models run
side by side, their builds and cells sharing the cluster; locally, one after the other."""
from __future__ import annotations

import html
import json
import threading
from dataclasses import replace
from pathlib import Path

from core.errors import UserError
from harness.config import RunConfig, slug
from harness.schema import write_json_atomic


def model_configs(cfg: RunConfig, models: list[str]) -> list[RunConfig]:
    """One configuration per model, each with its own folder under cfg.out."""
    slugs = [slug(m) for m in models]
    dup = sorted({s for s in slugs if slugs.count(s) > 1})
    if dup:
        raise UserError(f"two models would share the folder {cfg.out / dup[0]}: give each model once")
    return [replace(cfg, model=m, out=cfg.out / s) for m, s in zip(models, slugs)]


def run_models(cfg: RunConfig, models: list[str], run_one, console_for) -> int:
    """run_one(cfg_of_model, console) -> exit code, for every model; then the summary. The exit code is the worst
    (a bad input, 2, first; then a failed run or gate)."""
    configs = model_configs(cfg, models)
    codes: dict[str, int] = {}
    errors: dict[str, str] = {}

    def one(c: RunConfig) -> None:
        console = console_for(c)
        try:
            codes[c.model] = run_one(c, console)
        except UserError as e:
            console.line(f"error: {e}")
            codes[c.model], errors[c.model] = e.exit_code, str(e)
        except Exception as e:  # a bug or an unforeseen fault in one model's run: that model failed, the others go on
            msg = f"internal error: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            console.alarm(f"error: {msg}")
            codes[c.model], errors[c.model] = 1, msg

    if cfg.executor == "ray":
        # transformers' lazy module is not safe to import from two threads at once: import it here first
        from transformers import AutoConfig, AutoTokenizer  # noqa: F401

        threads = [threading.Thread(target=one, args=(c,), name=slug(c.model)) for c in configs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for c in configs:
            one(c)
    doc = summary(cfg.out, configs, codes, errors)
    write_json_atomic(cfg.out / "summary.json", doc)
    (cfg.out / "index.html").write_text(summary_html(doc))
    print(f"wrote {cfg.out / 'index.html'} and {cfg.out / 'summary.json'} ({len(configs)} models)")
    # a model that left no exit code (its thread died in a way not caught above) failed
    return max((codes.get(c.model, 1) for c in configs), key=lambda x: (x == 2, x)) if configs else 2


def _verdicts(out: Path) -> tuple[str, dict]:
    """(where the verdicts come from, variant -> verdict) for one model's run folder. A gate's verdict counts only
    for the results it read: one older than the results.json beside it (a compare run again, the gate not) gives
    way to the default policy's preview of the new results."""
    try:
        results = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        results = None
    try:
        v = json.loads((out / "verdict.json").read_text())
        if results is None or (v.get("results") or {}).get("created_at") == results.get("created_at"):
            return "gate", {k: d.upper() for k, d in v.get("variants", {}).items()}
    except (OSError, ValueError):
        pass
    if results is None:
        return "none", {}
    from harness.gate.preview import default_ship

    ship = default_ship(results)
    return "default policy preview", {k: d.upper() for k, d in ((ship or {}).get("variants") or {}).items()}


def summary(root: Path, configs: list[RunConfig], codes: dict, errors: dict) -> dict:
    models = []
    for c in configs:
        source, verdicts = _verdicts(c.out)
        flags = []
        try:
            flags = json.loads((c.out / "results.json").read_text()).get("flags", [])
        except (OSError, ValueError):
            pass
        models.append({"model": c.model, "folder": c.out.name, "exit_code": codes.get(c.model),
                       "error": errors.get(c.model), "verdict_source": source, "verdicts": verdicts,
                       "broken": sorted({f["variant"] for f in flags if f.get("level") in ("broken", "error")}),
                       "report": f"{c.out.name}/report.html" if (c.out / "report.html").is_file() else None})
    return {"models": models, "executor": configs[0].executor if configs else None}


def summary_html(doc: dict) -> str:
    e = html.escape
    rows = []
    for m in doc["models"]:
        link = f'<a href="{e(m["report"])}">{e(m["model"])}</a>' if m["report"] else e(m["model"])
        verdicts = ", ".join(f"{e(v)}: <b>{e(d)}</b>" for v, d in m["verdicts"].items()) or "—"
        status = e(m["error"]) if m["error"] else ("ok" if m["exit_code"] == 0 else f"exit {m['exit_code']}")
        broken = ", ".join(e(b) for b in m["broken"]) or "—"
        rows.append(f"<tr><td>{link}</td><td>{status}</td><td>{verdicts}<br><small>{e(m['verdict_source'])}</small></td>"
                    f"<td>{broken}</td></tr>")
    return ("<!doctype html><meta charset='utf-8'><title>quantcompare: models</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:6px;vertical-align:top}"
            "table{border-collapse:collapse}</style><h1>quantcompare: one run per model</h1>"
            "<table><tr><th>model (its report)</th><th>run</th><th>verdict by variant</th><th>broken or failed</th></tr>"
            + "".join(rows) + "</table>")
