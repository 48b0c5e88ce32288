"""The public API (`soupviz/__init__.py`): every name it lists is the object of its home module,
the type checker sees the same homes, and importing the package or its errors stays light."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import soupviz


def test_every_public_name_is_its_home_modules_object() -> None:
    assert soupviz.__all__ == ["SoupvizError", *soupviz._HOMES]
    for name, home in soupviz._HOMES.items():
        assert getattr(soupviz, name) is getattr(importlib.import_module(home), name), name
    assert soupviz.SoupvizError is importlib.import_module("soupviz.errors").SoupvizError


def test_the_type_checker_sees_the_same_homes() -> None:
    tree = ast.parse(Path(soupviz.__file__).read_text())
    checked = {alias.name: node.module for node in ast.walk(tree) if isinstance(node, ast.If)
               for inner in node.body if isinstance(inner, ast.ImportFrom) for alias in inner.names
               for node in [inner]}
    assert checked == soupviz._HOMES


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nowhere'"):
        soupviz.nowhere  # noqa: B018


def test_importing_the_package_or_its_errors_does_not_import_torch() -> None:
    code = "import sys, soupviz, soupviz.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(soupviz.__file__).parents[1])
    assert out.stdout.strip() == "False"
