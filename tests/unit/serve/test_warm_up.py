"""The server's warm-up loads every heavy module Home needs, so its first visitor waits for none."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("soupviz", "torch", "torchvision", "numpy", "scipy", "safetensors", "PIL")

LOAD_THEN_IMPORT_HOME = """
import ast, importlib, json, sys
sys.path.insert(0, {root!r})
from soupviz.serve.warm_up import load_page_libraries
load_page_libraries()
from soupviz.serve.warm_up import NOT_HERE
assert not set(NOT_HERE) & set(sys.modules), "the warm-up imported " + str(set(NOT_HERE) & set(sys.modules))
before = set(sys.modules)
tree = ast.parse(open({home!r}).read())
for node in ast.walk(tree):
    names = [node.module] if isinstance(node, ast.ImportFrom) else \\
        [a.name for a in node.names] if isinstance(node, ast.Import) else []
    for name in names:
        importlib.import_module(name)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_after_the_warm_up_homes_imports_load_no_heavy_module_and_pandas_was_left_alone() -> None:
    script = LOAD_THEN_IMPORT_HOME.format(root=str(ROOT), home=str(ROOT / "pages" / "home.py"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    late = [name for name in json.loads(done.stdout.splitlines()[-1]) if name.split(".")[0] in HEAVY]
    assert late == [], f"add these to soupviz.serve.warm_up.PAGE_MODULES: {late}"

