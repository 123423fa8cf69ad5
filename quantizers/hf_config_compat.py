"""Config spelling across transformers generations (pure Python: imported by workers of any environment).

Checkpoints saved by transformers 5 keep RoPE's base in `rope_parameters` and the dtype in `dtype`;
transformers 4.x reads neither and silently falls back to rope_theta = 10000 and float32."""
from __future__ import annotations

import json
import shutil
from pathlib import Path


def legacy_config(config: dict) -> tuple[dict, list[str]]:
    """The 4.x spelling of a transformers-5 config (see module docstring); returns it and what changed."""
    cfg, changed = dict(config), []
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and "rope_theta" in rp and cfg.get("rope_theta") != rp["rope_theta"]:
        cfg["rope_theta"] = rp["rope_theta"]
        changed.append(f"rope_theta={rp['rope_theta']}")
        if rp.get("rope_type", "default") != "default":
            cfg["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
            changed.append(f"rope_scaling={cfg['rope_scaling']}")
    if "dtype" in cfg and "torch_dtype" not in cfg:
        cfg["torch_dtype"] = cfg["dtype"]
        changed.append(f"torch_dtype={cfg['dtype']}")
    return cfg, changed


def legacy_view(source: Path, view: Path) -> list[str]:
    """A folder of links to the source's files with a 4.x config.json; returns what changed."""
    cfg, changed = legacy_config(json.loads((source / "config.json").read_text()))
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    for f in source.iterdir():
        if f.name != "config.json":
            (view / f.name).symlink_to(f.resolve())
    (view / "config.json").write_text(json.dumps(cfg, indent=2))
    return changed
