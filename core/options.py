"""Options declared once, as dataclass fields, and read three ways: as a command-line argument group, as a
section of a run's config file (TOML, or the `config` of a results.json) and as the dict a results.json records.

    @dataclass(frozen=True)
    class LlamaCppOptions:
        "llama.cpp runtime"
        flash_attn: str = opt("off", "flash attention (off: exact attention)", choices=("off", "on"))

A field's flag is `--<prefix><name>` with dashes (or `flag=`), its section key is its name. Values given on
the command line override the config file's, which override the defaults."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, field, fields, is_dataclass
from typing import Any

from core.errors import UserError


def opt(default: Any = MISSING, help: str = "", *, flag: str | None = None, aliases: tuple[str, ...] = (),
        choices: tuple | None = None, metavar: str | None = None, cli: bool = True, default_factory: Any = MISSING):
    """A dataclass field that is also a command-line option and a config-file key."""
    meta = {"help": help, "flag": flag, "aliases": aliases, "choices": choices, "metavar": metavar, "cli": cli}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _kind(type_str: str) -> tuple[str, bool]:
    """('int' | 'float' | 'str' | 'bool' | 'path' | 'ints' | 'strs', optional) from a field's annotation."""
    t = str(type_str).replace(" ", "")
    optional = t.endswith("|None") or t.startswith("None|")
    t = t.replace("|None", "").replace("None|", "")
    table = {"int": "int", "float": "float", "str": "str", "bool": "bool", "Path": "path",
             "tuple[int,...]": "ints", "tuple[str,...]": "strs"}
    if t not in table:
        raise TypeError(f"option type {type_str!r} is not supported")
    return table[t], optional


def convert(f, raw: Any) -> Any:
    """A value from the command line (a string) or a config file (TOML types) as the field's type."""
    from pathlib import Path

    kind, optional = _kind(f.type)
    if raw is None or (optional and isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        if optional:
            return None
        raise UserError(f"{f.name} needs a value")
    try:
        if kind in ("ints", "strs"):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            items = [str(x).strip() for x in items if str(x).strip()]
            return tuple(int(x) for x in items) if kind == "ints" else tuple(items)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "path":
            return Path(raw)
        return str(raw)
    except (TypeError, ValueError):
        what = {"int": "an integer", "float": "a number", "ints": "a list of integers", "strs": "a list of names",
                "bool": "true or false", "path": "a path", "str": "a string"}[kind]
        raise UserError(f"{f.name}: {raw!r} is not {what}") from None


def flag_of(f, prefix: str = "") -> str:
    return f.metadata.get("flag") or "--" + (prefix + f.name).replace("_", "-")


def add_group(parser: argparse.ArgumentParser, cls, section: str, title: str, prefix: str = "") -> None:
    """An argument group for every option of `cls`; parsed values land in dest `section.name`, and options
    not given are absent (argparse.SUPPRESS), so a config file's values are not overridden by defaults."""
    g = parser.add_argument_group(title, (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None)
    for f in fields(cls):
        md = f.metadata
        if not md.get("cli", True):
            continue
        kind, _ = _kind(f.type)
        default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING else None)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = md.get("help") or ""
        if shown not in (None, "", False, ()) and "default" not in help_text:
            help_text += f" (default: {shown})"
        names = (flag_of(f, prefix), *md.get("aliases", ()))
        kw: dict[str, Any] = {"dest": f"{section}.{f.name}", "default": argparse.SUPPRESS, "help": help_text}
        if kind == "bool":
            g.add_argument(*names, action=argparse.BooleanOptionalAction, **kw)
            continue
        if md.get("choices"):
            kw["choices"] = [c for c in md["choices"] if c is not None]
        else:
            kw["metavar"] = md.get("metavar") or {"int": "N", "float": "X", "path": "PATH", "ints": "N,N",
                                                   "strs": "A,B"}.get(kind, f.name.upper())
        g.add_argument(*names, **kw)


def build(cls, values: dict, section: str):
    """An instance of `cls` from a section's values (unknown keys are an error naming them)."""
    known = {f.name: f for f in fields(cls)}
    bad = sorted(set(values) - set(known))
    if bad:
        raise UserError(f"[{section}] has no option {', '.join(bad)}; it has {', '.join(known)}")
    out = {}
    for name, raw in values.items():
        f = known[name]
        value = convert(f, raw)
        if f.metadata.get("choices") and value is not None and value not in f.metadata["choices"]:
            raise UserError(f"[{section}] {name} = {value!r}: choose from {', '.join(map(str, f.metadata['choices']))}")
        out[name] = value
    return cls(**out)


def as_plain(obj: Any) -> Any:
    """A dataclass (or value) as JSON/TOML-ready data: tuples as lists, paths as strings."""
    from pathlib import Path

    if is_dataclass(obj):
        return {f.name: as_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [as_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: as_plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def sections_from_args(ns: argparse.Namespace) -> dict[str, dict]:
    """{section: {name: raw value}} of the options given on the command line."""
    out: dict[str, dict] = {}
    for dest, value in vars(ns).items():
        if "." in dest:
            section, name = dest.rsplit(".", 1)
            out.setdefault(section, {})[name] = value
    return out
