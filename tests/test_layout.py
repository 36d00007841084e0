"""The package shows its plan: no import circles between lthvp modules, no module over 300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "lthvp"
MAX_LINES = 300


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Edges module -> lthvp modules it imports (at any depth of the file, lazy imports included)."""
    modules = {module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_over_300_lines():
    long = {module_name(p): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_readme_layout_table_matches_the_tree():
    """Every module is named in the README's layout table, and every path named there exists."""
    import re

    readme = (PKG.parent / "README.md").read_text()
    table = readme[readme.index("## Layout"):]
    table = table[:table.index("\n## ", 5)]
    named = set(re.findall(r"`([\w./-]+)`", table))
    modules = {f"lthvp/{p.relative_to(PKG).as_posix()}" for p in PKG.rglob("*.py") if p.name != "__init__.py"}
    assert not modules - named, f"modules missing from the README layout table: {sorted(modules - named)}"
    paths = {n.rstrip("/") for n in named if "/" in n and not n.startswith("./")}  # ./data is the user's
    assert all((PKG.parent / p).exists() for p in paths), [p for p in paths if not (PKG.parent / p).exists()]


# Packages from the bottom up: a module may import its own package and those below it, never above
# (paths and the shared vocabulary first, then data, models and tickets, adaptation, running,
# analysis, drawing, and the command line on top).
LAYERS = ["paths", "results", "data", "tickets", "adapt", "compute", "analysis", "ui", "commands", "__main__",
          "metrics", "prompting", "sparsity", "store"]  # the last four: the public contract's old paths (re-exports)


def package_edges() -> set[tuple[str, str, str, str]]:
    """(package, imported package, module, imported module) for imports across packages."""
    out = set()
    for module, deps in import_graph().items():
        for dep in deps:
            a, b = module.split(".")[1], dep.split(".")[1]
            if a != b:
                out.add((a, b, module, dep))
    return out


def test_packages_import_only_downwards():
    rank = {name: i for i, name in enumerate(LAYERS)}
    packages = {module_name(p).split(".")[1] for p in PKG.rglob("*.py") if module_name(p) != "lthvp"}
    assert packages <= set(rank), f"packages missing from LAYERS: {sorted(packages - set(rank))}"
    upward = sorted(f"{m} -> {d}" for a, b, m, d in package_edges() if rank[b] > rank[a])
    assert not upward, upward


def test_no_page_imports_torch(tmp_path):
    """Every page renders a store of a few results with torch made unimportable: the server
    process of a dashboard that only reads and draws never loads torch (training runs in workers)."""
    import subprocess
    import sys

    script = f"""
import importlib.abc, os, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
try:
    import torch  # noqa: F401
    raise SystemExit("the blocker does not block")
except ImportError:
    pass
os.environ.update(LTHVP_STORE={str(tmp_path / "store")!r}, LTHVP_AUTOSTART_WORKER="0")
sys.path.insert(0, "tests")
from helpers import make_record
from lthvp.results.store import ResultStore
store = ResultStore(os.environ["LTHVP_STORE"])
for method in ("vp", "lp"):
    for level in (0, 2):
        for seed in (0, 1):
            store.put(make_record(seed=seed, method=method, level=level, family=0))
from streamlit.testing.v1 import AppTest
bad = []
for page in sorted(os.listdir("pages")):
    at = AppTest.from_file("app.py", default_timeout=60)
    at.switch_page("pages/" + page)
    at.run()
    if at.exception:
        bad.append((page, [e.message for e in at.exception]))
print("torch loaded" if "torch" in sys.modules else "ok", bad)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=PKG.parent, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "ok []", out.stdout[-3000:]


def test_the_public_contract_keeps_its_import_paths():
    """DESIGN.md section 2: the names outside checks call keep their import paths after the move
    into subpackages (each is a re-export of the module that owns it)."""
    from lthvp.adapt import prompting
    from lthvp.metrics import expected_calibration_error, reliability_table
    from lthvp.prompting import greedy_label_mapping
    from lthvp.results import metrics, store
    from lthvp.sparsity import global_magnitude_prune, load_ticket, remaining_fraction
    from lthvp.store import BundleError, ResultStore
    from lthvp.tickets import sparsity, ticket_formats

    assert (expected_calibration_error, reliability_table) == (metrics.expected_calibration_error,
                                                               metrics.reliability_table)
    assert greedy_label_mapping is prompting.greedy_label_mapping
    assert (global_magnitude_prune, remaining_fraction, load_ticket) == (
        sparsity.global_magnitude_prune, sparsity.remaining_fraction, ticket_formats.load_ticket)
    assert (BundleError, ResultStore) == (store.BundleError, store.ResultStore) and issubclass(BundleError, ValueError)
