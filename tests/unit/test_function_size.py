"""No long or tangled functions in the library (issue #22): every function in `soupviz/` fits in
`MAX_LINES` lines, from its `def` to its last line (docstring included), and ruff's McCabe
complexity (C901) of each stays within `MAX_COMPLEXITY`. A function that grows past either is
split into named steps rather than listed here."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "soupviz"
MAX_LINES = 60
MAX_COMPLEXITY = 15


def function_lengths(source: str) -> Iterator[tuple[str, int, int]]:
    """(name, first line, lines) of every function and method in `source`, nested ones included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def long_functions(root: Path = PACKAGE, limit: int = MAX_LINES) -> dict[str, str]:
    """'path:name' -> 'path:line name (N lines)' for each function of `root` over `limit` lines."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).as_posix()
        for name, line, lines in function_lengths(path.read_text(encoding="utf-8")):
            if lines > limit:
                found[f"{relative}:{name}"] = f"{relative}:{line} {name} ({lines} lines)"
    return found


def ruff_command() -> list[str] | None:
    """How to run ruff here: the module of this Python, else the binary on PATH; None without either."""
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    binary = shutil.which("ruff")
    return [binary] if binary else None


def test_the_length_check_counts_from_def_to_last_line() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(58))
    source = f'def fits():\n    """Doc."""\n{body}\n\ndef too_long():\n    """Doc."""\n{body}    return x0\n'
    lengths = {name: lines for name, _, lines in function_lengths(source)}
    assert lengths == {"fits": 60, "too_long": 61}


def test_no_library_function_is_longer_than_the_limit() -> None:
    offenders = [text for key, text in long_functions().items()]
    assert not offenders, (
        f"functions over {MAX_LINES} lines (split each into named steps):\n" + "\n".join(offenders)
    )


def test_no_library_function_is_more_complex_than_the_limit() -> None:
    command = ruff_command()
    if command is None:
        pytest.skip("ruff is not installed (it is a dev dependency: pip install -e '.[dev]')")
    result = subprocess.run(
        [*command, "check", "--isolated", "--no-cache", "--select", "C901", "--config",
         f"lint.mccabe.max-complexity={MAX_COMPLEXITY}", "--output-format", "concise", str(PACKAGE)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, (
        f"functions over complexity {MAX_COMPLEXITY} (split each into named steps):\n{result.stdout}{result.stderr}"
    )
