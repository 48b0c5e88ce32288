"""The package's map: folders are layers, imports run one way down `LAYERS`, and nothing imports in
a circle, between modules or between folders. Every import counts: at the top, inside a function
and under `if TYPE_CHECKING:` (a cycle there is a cycle of ideas even where Python tolerates it).

A unit is a folder of `soupviz/` (`models`, `results`, ...), a module of the ground floor
(`errors`, `data`, ...) or `soupviz` itself, the public API in `soupviz/__init__.py`. A module may
import its own unit or a unit of a lower layer; the README's architecture section draws the same
table."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "soupviz"

LAYERS: list[tuple[str, set[str]]] = [
    ("ground floor: vocabulary, files, devices, datasets",
     {"errors", "threats", "progress", "files", "device", "data", "datapack"}),
    ("architectures", {"models"}),
    ("checkpoints and families", {"checkpoints"}),
    ("soups", {"soups"}),
    ("attacks and corruptions", {"attacks", "corruptions"}),
    ("results as data and the store", {"results"}),
    ("measuring", {"evaluate"}),
    ("training", {"train"}),
    ("insight", {"insight"}),
    ("text and figures", {"present"}),
    ("dashboard support", {"serve"}),
    ("the public API", {"soupviz"}),
    ("command line", {"cli"}),
]
UNITS = {unit: layer for layer, (_, units) in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    """'soupviz.attacks.pgd' for soupviz/attacks/pgd.py, 'soupviz' for soupviz/__init__.py."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The unit a soupviz module belongs to: its folder below soupviz, or the module itself."""
    parts = module.split(".")
    return "soupviz" if len(parts) == 1 else parts[1]


def layer_of(module: str) -> int:
    """The layer of a soupviz module's unit (KeyError where `LAYERS` names no such unit)."""
    unit = unit_of(module)
    if unit not in UNITS:
        raise KeyError(f"{module} is in no layer")
    return UNITS[unit]


def soupviz_imports(path: Path) -> set[str]:
    """The soupviz modules `path` imports anywhere in it (`from soupviz.x import y` counts as
    soupviz.x.y where y is a module or subpackage, else as soupviz.x); relative imports resolved."""
    this = module_name(path) if path.is_relative_to(PACKAGE.parent) else "soupviz." + path.stem
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "soupviz"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "soupviz":
                continue
            folder = PACKAGE.parent.joinpath(*module.split("."))
            found |= {f"{module}.{a.name}" if (folder / f"{a.name}.py").exists() or (folder / a.name).is_dir()
                      else module for a in node.names}
    return found - {this}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (or a node importing itself), each
    sorted: every import cycle of `graph` (node -> the nodes it imports) lies in one of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


MODULES = sorted(PACKAGE.rglob("*.py"))
IMPORTS = {module_name(p): soupviz_imports(p) for p in MODULES}


def unit_graph(imports: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Imports between units (a folder's imports of itself left out)."""
    graph: dict[str, set[str]] = {}
    for module, targets in imports.items():
        graph.setdefault(unit_of(module), set()).update(unit_of(t) for t in targets if unit_of(t) != unit_of(module))
    return graph


def upward(imports: Mapping[str, set[str]]) -> list[str]:
    return [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in sorted(imports.items()) for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]


def test_every_module_is_in_a_layer_and_every_unit_has_a_module() -> None:
    units = {unit_of(m) for m in IMPORTS}
    assert sorted(units - set(UNITS)) == [], "place the new folder or module in LAYERS and the README"
    assert sorted(set(UNITS) - units) == [], "LAYERS names a unit that no longer exists"


def test_no_module_imports_a_higher_layer() -> None:
    assert upward(IMPORTS) == []


def test_no_import_cycle_between_modules() -> None:
    assert cycles(IMPORTS) == []


def test_no_import_cycle_between_folders() -> None:
    assert cycles(unit_graph(IMPORTS)) == []


def test_the_library_never_imports_streamlit() -> None:
    users = [module_name(p) for p in MODULES
             if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "streamlit" in
                    ([a.name.split(".")[0] for a in n.names] if isinstance(n, ast.Import)
                     else [(n.module or "").split(".")[0]]) for n in ast.walk(ast.parse(p.read_text())))]
    assert users == []


def test_the_import_reader_counts_function_local_type_checking_and_relative_imports(tmp_path: Path) -> None:
    module = tmp_path / "weights.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from soupviz import errors\n"
        "if TYPE_CHECKING:\n    from soupviz.results.store import ResultStore\n"
        "def f():\n    from soupviz.present.labels import soup_label\n"
        "    import soupviz.models.registry as registry\n"
        "    from soupviz.threats import THREATS\n")
    assert soupviz_imports(module) == {"soupviz.errors", "soupviz.results.store", "soupviz.present.labels",
                                       "soupviz.models.registry", "soupviz.threats"}
    relative = PACKAGE / "soups" / "weights.py"
    assert all(t.startswith("soupviz.") for t in soupviz_imports(relative))


def test_the_checks_catch_an_upward_import_and_cycles_of_any_length() -> None:
    imports = {"soupviz.soups.weights": {"soupviz.present.labels"}, "soupviz.present.labels": set()}
    assert upward(imports) == [
        "soupviz.soups.weights (soups) imports soupviz.present.labels (text and figures)"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    folders = unit_graph({"soupviz.results.records": {"soupviz.evaluate.methods"},
                          "soupviz.evaluate.methods": {"soupviz.results.metric_specs"}})
    assert cycles(folders) == [["evaluate", "results"]]
    with pytest.raises(KeyError):
        layer_of("soupviz.nowhere.x")
