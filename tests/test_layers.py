"""The packages' layering, read from the source: core/ at the bottom imports none of the others;
quantizers/, evaluators/ and reports/ import core/ and nothing of harness/ (nor of each other); and the
module-level imports of all five packages form no cycle."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "harness", "quantizers", "evaluators", "reports")
MAY_IMPORT = {
    "core": {"core"},
    "quantizers": {"core", "quantizers"},
    "evaluators": {"core", "evaluators"},
    "reports": {"core", "reports"},
    "harness": set(PACKAGES),
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # imports under `if __name__ == "__main__"` or try: still run at import
        nodes = [n for top in tree.body for n in ast.walk(top) if not isinstance(top, (ast.FunctionDef, ast.ClassDef))]
    out = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            out.add(n.module)
            out |= {f"{n.module}.{a.name}" for a in n.names}
    return {m for m in out if m.split(".")[0] in PACKAGES}


def _sources():
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            yield pkg, f


def test_no_package_imports_above_its_layer():
    bad = []
    for pkg, f in _sources():
        for m in _imports(f, top_level_only=False):
            if m.split(".")[0] not in MAY_IMPORT[pkg]:
                bad.append(f"{f.relative_to(ROOT)} imports {m}")
    assert not bad, "\n".join(bad)


def test_module_level_imports_have_no_cycle():
    modules = {_module(f): f for _, f in _sources()}
    graph = {}
    for name, f in modules.items():
        deps = set()
        for m in _imports(f, top_level_only=True):
            # `from pkg import name` names a module when pkg.name is one, else pkg itself
            deps.add(m if m in modules else m.rsplit(".", 1)[0] if m.rsplit(".", 1)[0] in modules else m)
        graph[name] = {d for d in deps if d in modules and d != name}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in graph[n]:
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n)


def test_the_check_would_catch_an_upward_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from harness.config import RunConfig\n")
    assert "harness.config" in _imports(f, top_level_only=False)
    assert "harness.config" not in _imports(f, top_level_only=True)
