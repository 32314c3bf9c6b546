"""The library's layers (docs/DESIGN.md): imports run one way, and no module imports itself back.

    core  <-  mysql, aws  <-  context  <-  checks  <-  phases  <-  run  <-  lab

A module may import its own layer and the layers below it: ``phases`` may import ``checks``, never
the reverse.  ``mysql`` and ``aws`` stand side by side and do not import each other.  Nothing but
``lab`` (and the ``runbook lab`` command in ``run/cli.py``) imports ``lab``.  Every import counts,
also those inside functions and under ``TYPE_CHECKING``: a type is a dependency too.  Circles are
looked for among imports run when a module loads (top level, outside ``TYPE_CHECKING``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "runbook_lib"
RANK = {"core": 0, "mysql": 1, "aws": 1, "context": 2, "checks": 3, "phases": 4, "run": 5, "lab": 6}
LAB_ENTRY = {"runbook_lib.run.cli"}        # `runbook lab ...` dispatches to the lab


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "runbook_lib" else None


def _in_type_checking(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, runs at load time) for every runbook_lib import in ``path``."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        names = [n for n in names if n.startswith("runbook_lib.")]
        if not names:
            continue
        at_load = parents.get(node) is tree or (isinstance(parents.get(node), (ast.Try, ast.If))
                                                 and not _in_type_checking(node, parents))
        at_load = at_load and not _in_type_checking(node, parents)
        for name in names:
            found.append((name, node.lineno, at_load))
    return found


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _existing(name: str) -> str | None:
    """The module an imported dotted name refers to (``a.b.c`` may be module ``a.b`` and name ``c``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def violations() -> list[str]:
    bad = []
    for mod, path in MODULES.items():
        mine = layer(mod)
        for name, line, _ in imports(path):
            target = _existing(name)
            theirs = layer(target or name)
            if mine is None or theirs is None or mine == theirs:
                continue
            where = f"{path.relative_to(ROOT.parent)}:{line} imports {name}"
            if theirs == "lab" and mod not in LAB_ENTRY:
                bad.append(f"{where}: only the lab imports the lab")
            elif theirs != "lab" and RANK[theirs] > RANK[mine]:
                bad.append(f"{where}: {mine} may not import the higher layer {theirs}")
            elif RANK[theirs] == RANK[mine]:
                bad.append(f"{where}: {mine} and {theirs} stand side by side and do not import each other")
    return bad


def cycles() -> list[list[str]]:
    graph = {mod: {t for n, _, at_load in imports(p) if at_load and (t := _existing(n)) and t != mod}
             for mod, p in MODULES.items()}
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    return found


def test_every_package_has_a_layer():
    assert {layer(m) for m in MODULES} - {None} == set(RANK)


def test_imports_run_down_the_layers():
    assert violations() == []


def test_no_import_circles():
    assert cycles() == []


def test_no_module_offers_names_it_only_imports():
    """No re-export shims: a module's ``__all__`` lists only names it defines."""
    shims = []
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        defined |= {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                shims += [f"{mod}: {name}" for name in ast.literal_eval(node.value) if name not in defined]
    assert shims == []


@pytest.mark.parametrize("source, expected", [
    ("from runbook_lib.phases.cutover.steps import run\n", "checks may not import the higher layer phases"),
    ("from runbook_lib.lab import control\n", "only the lab imports the lab"),
    ("def f():\n    from runbook_lib.phases import failover_test\n", "may not import the higher layer phases"),
])
def test_a_wrong_way_import_is_caught(tmp_path, monkeypatch, source, expected):
    """The check itself: a checks module that imports a phase (or the lab) is reported."""
    fake = ROOT / "checks" / "_wrong_way_probe.py"
    monkeypatch.setitem(MODULES, "runbook_lib.checks._wrong_way_probe", fake)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, _orig=Path.read_text, **k:
                        source if self == fake else _orig(self, *a, **k))
    assert any(expected in v for v in violations())


def test_a_circle_is_caught(monkeypatch):
    a, b = ROOT / "core" / "_probe_a.py", ROOT / "core" / "_probe_b.py"
    texts = {a: "from runbook_lib.core import _probe_b\n", b: "from runbook_lib.core._probe_a import x\n"}
    monkeypatch.setitem(MODULES, "runbook_lib.core._probe_a", a)
    monkeypatch.setitem(MODULES, "runbook_lib.core._probe_b", b)
    monkeypatch.setattr(Path, "read_text", lambda self, *args, _orig=Path.read_text, **k:
                        texts[self] if self in texts else _orig(self, *args, **k))
    assert any("runbook_lib.core._probe_a" in c and "runbook_lib.core._probe_b" in c for c in cycles())


# --- one home for every name -----------------------------------------------------------------------

REPO = ROOT.parent


def _defined(module: str) -> set[str]:
    """Names a module defines itself (functions, classes, assignments at any top-level block)."""
    tree = ast.parse(MODULES[module].read_text())
    names: set[str] = set()
    for node in tree.body:
        for n in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
            elif isinstance(n, ast.Import):          # a module it uses (tests patch time.sleep through it)
                names |= {(a.asname or a.name).split(".")[0] for a in n.names}
            elif isinstance(n, (ast.Assign, ast.AnnAssign)):
                for t in n.targets if isinstance(n, ast.Assign) else [n.target]:
                    names |= {x.id for x in ast.walk(t) if isinstance(x, ast.Name)}
    return names


def _sources() -> list[tuple[str, str]]:
    """(where, Python text) of every library, test and bench file and every notebook's code."""
    import json
    out = [(str(p.relative_to(REPO)), p.read_text()) for d in ("runbook_lib", "tests", "bench")
           for p in sorted((REPO / d).rglob("*.py"))]
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        out.append((nb.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")))
    return out


def second_paths() -> list[str]:
    """Imports of a name from a module that only imports it, and ``module.name`` uses of the same."""
    bad = []
    for where, text in _sources():
        tree = ast.parse(text)
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("runbook_lib")):
                continue
            for a in node.names:
                if f"{node.module}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                elif node.module in MODULES and a.name not in _defined(node.module):
                    bad.append(f"{where}:{node.lineno}: {a.name} imported from {node.module}, not its home")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                module = aliases[node.value.id]
                if node.attr not in _defined(module) and f"{module}.{node.attr}" not in MODULES:
                    bad.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr} is not defined in {module}")
    return bad


def test_every_name_is_imported_from_its_home():
    assert second_paths() == []
