"""The package's imports run one way, down the layers the README's architecture section draws:
threats → data → models/checkpoints → weights → soup → attacks/corruptions/train → evaluate/store/
sweep → report/figures → cli and pages. A module may import its own layer or any below.

An entry of `LAYERS` is a module's dotted path below `soupviz` ('store', 'insight.runs') or a
subpackage's ('evaluate'); a module takes the layer of the longest entry that is its own path or a
parent's, so a subpackage is one unit unless its modules are named apart. A split subpackage
('insight', whose modules sit in several layers) must name each module; its own entry places
its `__init__`, in the lowest of its modules' layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "soupviz"

LAYERS: list[set[str]] = [
    {"soupviz", "errors", "threats", "progress", "storage", "device", "image_filters", "settings"},
    {"data", "datapack"},
    {"models", "zoo_models", "zoo_entries", "cards", "torch_files", "state_layout", "checkpoints", "foreign_formats",
     "foreign", "serving", "places"},
    {"weights", "links"},
    {"parameters", "soup", "layerwise", "task_vectors"},
    {"attacks", "corruptions", "train", "insight", "insight.generate", "insight.saliency", "insight.shifts"},
    {"evaluate", "store", "store_connection", "background", "sweep", "insight.weight_search", "insight.adapt",
     "insight.few_shot"},
    {"labels", "report", "figures", "store_grid", "soup_rows", "interpolate"},
    {"cli", "insight.runs", "insight.adaptation_views", "insight.kept_runs"},
]
ENTRIES = set().union(*LAYERS)


def module_name(path: Path) -> str:
    """'soupviz.attacks.pgd' for soupviz/attacks/pgd.py, 'soupviz' for soupviz/__init__.py."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def entry_of(module: str) -> str | None:
    """The longest entry of `LAYERS` that is the module's dotted path below soupviz or a parent's
    ('insight.runs' for soupviz.serve.insight_runs, 'evaluate' for soupviz.results.metric_specs), or None."""
    if module == "soupviz":
        return "soupviz" if "soupviz" in ENTRIES else None
    parts = module.split(".")[1:]
    return next((name for name in (".".join(parts[:i]) for i in range(len(parts), 0, -1)) if name in ENTRIES), None)


def layer_of(module: str) -> int:
    """The layer of a soupviz module: its entry's (KeyError where no entry places it)."""
    entry = entry_of(module)
    for layer, names in enumerate(LAYERS):
        if entry in names:
            return layer
    raise KeyError(f"{module} is in no layer")


def split_packages() -> set[str]:
    """Subpackages whose modules are named apart in `LAYERS` ('insight')."""
    return {name.rsplit(".", 1)[0] for name in ENTRIES if "." in name}


def misplaced(modules: list[str]) -> list[str]:
    """What is wrong with the placement of `modules`: a module no entry places, a module of a split
    subpackage placed only by the subpackage's entry, and an entry that places no module."""
    entries = {module: entry_of(module) for module in modules}
    split = split_packages()
    return (
        [f"{m} is in no layer" for m, entry in entries.items() if entry is None]
        + [f"{m} is placed only by its split subpackage {entry!r}: name it in a layer"
           for m, entry in entries.items() if entry in split and m != f"soupviz.{entry}"]
        + [f"{name!r} places no module" for name in sorted(ENTRIES - set(entries.values()))]
    )


def soupviz_imports(path: Path) -> set[str]:
    """The soupviz modules `path` imports, at the top or inside functions (`from soupviz.x import y`
    counts as soupviz.x.y where y is a module or subpackage, else as soupviz.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "soupviz"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "soupviz":
            folder = PACKAGE.parent.joinpath(*node.module.split("."))
            found |= {f"{node.module}.{a.name}" if (folder / f"{a.name}.py").exists() or (folder / a.name).is_dir()
                      else node.module for a in node.names}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert misplaced([module_name(p) for p in MODULES]) == [], (
        "place new modules in a layer of LAYERS (and the README's architecture section)")


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{module_name(p)} (layer {layer_of(module_name(p))}) imports {target} (layer {layer_of(target)})"
        for p in MODULES for target in sorted(soupviz_imports(p))
        if layer_of(target) > layer_of(module_name(p))
    ]
    assert upward == []


def test_the_library_never_imports_streamlit() -> None:
    users = [module_name(p) for p in MODULES
             if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "streamlit" in
                    ([a.name.split(".")[0] for a in n.names] if isinstance(n, ast.Import)
                     else [(n.module or "").split(".")[0]]) for n in ast.walk(ast.parse(p.read_text())))]
    assert users == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "soups/weights.py"
    module.write_text("from soupviz.present.soup_figures import ternary_figure\nfrom soupviz import errors\n")
    assert soupviz_imports(module) == {"soupviz.present.soup_figures", "soupviz.errors"}
    assert layer_of("soupviz.present.soup_figures") > layer_of("soupviz.soups.weights")
    inside = tmp_path / "saliency.py"  # within a split subpackage
    inside.write_text("from soupviz.insight import runs\nfrom soupviz.results.records import Record\n")
    assert soupviz_imports(inside) == {"soupviz.serve.insight_runs", "soupviz.results.records"}
    assert layer_of("soupviz.serve.insight_runs") > layer_of("soupviz.insight.saliency")


def test_the_placement_check_catches_unplaced_modules_and_stale_entries() -> None:
    placed = [module_name(p) for p in MODULES]
    assert misplaced([*placed, "soupviz.nowhere"]) == ["soupviz.nowhere is in no layer"]
    assert misplaced([*placed, "soupviz.insight.new"]) == [
        "soupviz.insight.new is placed only by its split subpackage 'insight': name it in a layer"]
    assert misplaced([m for m in placed if m != "soupviz.serve.insight_runs"]) == ["'insight.runs' places no module"]
    assert layer_of("soupviz.insight") == min(layer_of(m) for m in placed if m.startswith("soupviz.insight."))
    with pytest.raises(KeyError):
        layer_of("soupviz.nowhere")
