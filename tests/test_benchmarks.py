"""The benchmark scripts keep working as the library changes (they are run by hand, so nothing else
would notice): each one imports, and the page benchmark's synthetic store builds valid results."""

import importlib.util
import sys

import pytest

from helpers import REPO

SCRIPTS = sorted((REPO / "benchmarks").glob("*.py"))


def load(path):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_imports_and_has_a_main(path):
    assert callable(getattr(load(path), "main", None)), f"{path.name} has no main()"


def test_page_benchmark_builds_a_valid_synthetic_store(tmp_path):
    from lthvp.results.store import ResultStore

    bench = load(REPO / "benchmarks" / "bench_pages.py")
    bench.synthetic_store(tmp_path / "s", REPO / "tests" / "fixtures" / "mini_digits_v1.zip", 30)
    store = ResultStore(tmp_path / "s")
    assert len(store) == 30 and store.check() == []
