"""tools/ reads one way: cli -> commands -> helpers, never back, no circle.

The import graph is read from the sources with ast, imports inside functions
included (a lazy import closes a circle just the same).
"""

import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT

TOOLS = os.path.join(ROOT, "tools")
MODULES = sorted(name[:-3] for name in os.listdir(TOOLS) if name.endswith(".py"))
# Shared helpers: they may import each other, never a command or the CLI.
HELPERS = {"__init__", "args", "boards", "ports", "images", "abi", "remote", "sync"}


def imports_of(module):
    """The tools modules ``module`` imports, anywhere in its source."""
    with open(os.path.join(TOOLS, module + ".py")) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tools":
                found.update(a.name for a in node.names if a.name in MODULES)
                found.add("__init__")
            elif node.module.startswith("tools."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("tools."):
                    found.add(a.name.split(".")[1])
    found.discard(module)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_the_graph_is_read():
    assert "flash" in GRAPH["cli"] and "images" in GRAPH["flash"]
    assert GRAPH["install"] >= {"flash", "deploy"}


def test_no_import_circle():
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import circle: " + " -> ".join(path + [m])
        state[m] = "open"
        for dep in sorted(GRAPH[m]):
            visit(dep, path + [m])
        state[m] = "done"

    for m in MODULES:
        visit(m, [])


def test_nothing_imports_the_cli():
    assert [m for m in MODULES if "cli" in GRAPH[m] and m != "__main__"] == []


def test_helpers_import_only_helpers():
    for m in sorted(HELPERS):
        assert GRAPH[m] <= HELPERS, "%s imports %s" % (m, sorted(GRAPH[m] - HELPERS))


@pytest.mark.parametrize("module", [m for m in MODULES if m != "__main__"])
def test_each_module_imports_alone(module):
    proc = subprocess.run([sys.executable, "-c", "import tools.%s" % module], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
