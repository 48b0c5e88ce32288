"""The package's imports run one way, down the layers the README's architecture section draws:
threats → data → models/checkpoints → weights → soup → attacks/corruptions → evaluate/metrics/
store/sweep → report/figures → cli and pages. A module may import its own layer or any below."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "soupviz"

LAYERS: list[set[str]] = [
    {"soupviz", "errors", "threats", "progress", "storage", "device", "image_filters"},
    {"data"},
    {"models", "zoo_models", "checkpoints", "foreign", "serving"},
    {"weights"},
    {"soup"},
    {"attacks", "corruptions", "generate", "saliency", "train", "train_config", "train_losses"},
    {"metrics", "store", "evaluate", "background", "sweep", "comparison", "baselines", "ensembles", "weight_search",
     "adapt", "few_shot", "soupability"},
    {"report", "export", "figures", "tradeoff", "insight_figures", "soupability_figure", "simplex_figures",
     "store_grid"},
    {"cli", "cli_import", "cli_insight", "dashboard", "app_state", "insight_pages"},
]


def module_name(path: Path) -> str:
    """'soupviz.attacks.pgd' for soupviz/attacks/pgd.py, 'soupviz' for soupviz/__init__.py."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of a soupviz module: its top-level name's (a subpackage is one unit)."""
    top = module.split(".")[1] if "." in module else "soupviz"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def soupviz_imports(path: Path) -> set[str]:
    """The soupviz modules `path` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "soupviz"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "soupviz":
            if node.module == "soupviz":
                found |= {f"soupviz.{a.name}" if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                          else "soupviz" for a in node.names}
            else:
                found.add(node.module)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    tops = {module_name(p).split(".")[1] if "." in module_name(p) else "soupviz" for p in MODULES}
    placed = set().union(*LAYERS)
    assert tops - placed == set(), "place new modules in a layer of LAYERS (and the README's architecture section)"
    assert placed - tops == set(), "LAYERS names modules that no longer exist"


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
    module = tmp_path / "weights.py"
    module.write_text("from soupviz.figures import ternary_figure\nfrom soupviz import errors\n")
    assert soupviz_imports(module) == {"soupviz.figures", "soupviz.errors"}
    assert layer_of("soupviz.figures") > layer_of("soupviz.weights")
