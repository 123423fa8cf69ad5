"""The packages' layering, read from the source: core/ at the bottom imports none of the others;
quantizers/, evaluators/ and reports/ import core/ and nothing of harness/ (nor of each other); and the
imports of all five packages form no cycle, at module level or inside functions."""
import ast
import sys
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


def _graph(sources, top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module(f): f for _, f in sources}
    graph = {}
    for name, f in modules.items():
        deps = set()
        for m in _imports(f, top_level_only):
            # `from pkg import name` names a module when pkg.name is one, else pkg itself
            deps.add(m if m in modules else m.rsplit(".", 1)[0] if m.rsplit(".", 1)[0] in modules else m)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_module_level_imports_have_no_cycle():
    cycle = _cycle(_graph(list(_sources()), top_level_only=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_inside_functions_have_no_cycle_either():
    """A function-level import that closes a circle is a cycle deferred, not removed."""
    cycle = _cycle(_graph(list(_sources()), top_level_only=False))
    assert cycle is None, "import cycle (through function-level imports): " + " -> ".join(cycle)


def test_the_cycle_check_would_catch_a_function_level_cycle(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    pkg = tmp_path / "harness"
    pkg.mkdir()
    (pkg / "a.py").write_text("from harness.b import g\n")
    (pkg / "b.py").write_text("def g():\n    from harness.a import x\n")
    sources = [("harness", pkg / "a.py"), ("harness", pkg / "b.py")]
    assert _cycle(_graph(sources, top_level_only=True)) is None
    assert _cycle(_graph(sources, top_level_only=False)) == ["harness.a", "harness.b", "harness.a"]


def test_the_check_would_catch_an_upward_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from harness.config import RunConfig\n")
    assert "harness.config" in _imports(f, top_level_only=False)
    assert "harness.config" not in _imports(f, top_level_only=True)
