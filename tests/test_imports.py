"""Module boundaries, read from the source with ``ast`` (nothing is imported, no model loads).

* No module of ``scanner/`` or ``pipelines/`` uses another module's private names (``from X import _name``,
  ``X._name``): a name shared between modules is public in the module that owns it. A test may use the private
  helpers of the module it tests (``tests/test_redundancy.py`` -> ``scanner.redundancy``), and no other's.
* The modules of ``scanner/`` and ``pipelines/`` import each other without cycles, counting imports inside
  functions too (they run on first call). Imports under ``if TYPE_CHECKING:`` never run and are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scanner", "pipelines")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = project_modules()


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def owning_module(dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a project module."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@dataclass
class Imports:
    """What one source file imports: project modules it depends on at run time, and the private names of
    other modules it uses (``(module, name, line)``)."""

    module: str
    edges: set[str] = field(default_factory=set)
    private: list[tuple[str, str, int]] = field(default_factory=list)
    #: local name -> the dotted module it is bound to (``import scanner.report`` binds ``scanner``)
    bound: dict[str, str] = field(default_factory=dict)


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def import_nodes(tree: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, anywhere (functions, classes, try blocks), and whether it is typing-only."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, typing_only
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                yield from import_nodes(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from import_nodes(ast.Module(body=[child], type_ignores=[]), typing_only)
        else:
            yield from import_nodes(node, typing_only)


def read_imports(path: Path, module: str | None = None) -> Imports:
    module = module or module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = Imports(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node, typing_only in import_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                owner = owning_module(alias.name)
                if owner and not typing_only:
                    found.edges.add(owner)
                if alias.asname:
                    found.bound[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    found.bound[head] = head
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in MODULES:  # from scanner import report
                target = submodule
                found.bound[alias.asname or alias.name] = submodule
            else:
                target = owning_module(base)
                if target and target != module and is_private(alias.name):
                    found.private.append((target, alias.name, node.lineno))
            if target and not typing_only:
                found.edges.add(target)
    for node in ast.walk(tree):  # module._name
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            chain = dotted(node.value)
            if chain is None:
                continue
            head, _, rest = chain.partition(".")
            if head not in found.bound:
                continue
            target = ".".join(filter(None, [found.bound[head], rest]))
            if target in MODULES and target != module:
                found.private.append((target, node.attr, node.lineno))
    found.edges.discard(module)
    return found


GRAPH = {name: read_imports(path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_parser_sees_every_module_and_its_imports():
    assert {"scanner", "scanner.cli", "scanner.scanning", "scanner.prefilter", "pipelines.benchmark"} <= set(MODULES)
    assert "scanner.scanning" in GRAPH["scanner.cli"].edges  # imported inside a function
    assert "scanner.candidates" in GRAPH["scanner.scanning"].edges
    assert "scanner.candidates" not in GRAPH["scanner.ann"].edges  # a TYPE_CHECKING import only


def test_no_module_uses_another_modules_private_names():
    bad = [f"{m}:{line} uses {target}.{name}" for m, imp in sorted(GRAPH.items()) for target, name, line in imp.private]
    assert not bad, "make these names public in the module that owns them:\n" + "\n".join(bad)


def test_tests_use_only_the_private_names_of_the_module_they_test():
    bad = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tested = path.stem.removeprefix("test_")
        for target, name, line in read_imports(path, f"tests.{path.stem}").private:
            last = target.rpartition(".")[2]
            if not (tested.startswith(last) or last.startswith(tested)):
                bad.append(f"tests/{path.name}:{line} uses {target}.{name}")
    assert not bad, "\n".join(bad)


def test_no_submodule_shadows_a_name_the_package_exports():
    """``scanner.scan`` is a function (loaded lazily by ``scanner.__getattr__``); a submodule ``scanner/scan.py``
    would replace it with the module as soon as anything imported that submodule."""
    tree = ast.parse((ROOT / "scanner" / "__init__.py").read_text(encoding="utf-8"))
    exported: set[str] = set()
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id in ("__all__", "_LAZY") and node.value is not None:
            value = ast.literal_eval(node.value)
            exported |= set(value)
    assert {"scan", "check", "dedupe", "ScanConfig"} <= exported
    submodules = {name.rpartition(".")[2] for name in MODULES if name.startswith("scanner.")}
    assert not exported & submodules


def test_no_import_cycles():
    found = cycles({name: imp.edges for name, imp in GRAPH.items()})
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checks_catch_what_they_look_for(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\n"
                     "import scanner.candidates\n"
                     "from scanner import report as rep\n"
                     "if TYPE_CHECKING:\n    from scanner.index import ReferenceIndex\n"
                     "def f():\n"
                     "    from scanner.cache import _remove_stale_temporaries\n"
                     "    return scanner.candidates._hidden, rep._private, rep.__name__\n")
    found = read_imports(probe, "tests.probe")
    assert found.edges == {"scanner.candidates", "scanner.report", "scanner.cache"}
    assert sorted((t, n) for t, n, _ in found.private) == [
        ("scanner.cache", "_remove_stale_temporaries"), ("scanner.candidates", "_hidden"), ("scanner.report", "_private")]
