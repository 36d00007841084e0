"""Shared fixtures. Tests run single-threaded torch so that two test processes (or a test run
beside a benchmark) never oversubscribe the cores.

Hermetic by default: every location the library writes or seeds from ($LTHVP_STORE,
$LTHVP_FEATURES, $LTHVP_DATA, $LTHVP_BUNDLES) points into pytest's temporary directory, and no
shipped bundle seeds a store. A test that needs the shipped study says so with
``@pytest.mark.shipped``: its store is a copy of a template that imported the shipped bundles
once per session. At the end of the session, the repository's cache/ must be as it was.
"""

import os
import shutil
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("LTHVP_TEST_THREADS", "1")))

REPO = Path(__file__).resolve().parent.parent
REPO_CACHE = REPO / "cache"
SCRATCH = "runtime"  # cache/runtime/: scripts' scratch space (sweeps, pilots), not the library's defaults


def _cache_snapshot() -> dict[str, tuple[int, int]]:
    out = {}
    for path in REPO_CACHE.rglob("*"):
        rel = path.relative_to(REPO_CACHE)
        if rel.parts[0] != SCRATCH and path.is_file():
            st = path.stat()
            out[str(rel)] = (st.st_size, st.st_mtime_ns)
    return out


def pytest_sessionstart(session):
    session.config._lthvp_cache = _cache_snapshot()  # compared at the end: tests leave cache/ alone


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_lthvp_cache", None)
    if before is None or hasattr(session.config, "workerinput"):
        return
    after = _cache_snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        print(f"\nFAILED hermeticity: the test session changed the repository's cache/: {changed[:10]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config):
    """Session defaults, set before any module imports the library: temporary directories for
    every location, no shipped bundles. Fixtures that set their own store restore these."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="lthvp-hermetic-"))
    for name in ("features", "data", "no_bundles", "store"):
        (root / name).mkdir()
    config._lthvp_root = root
    os.environ.update(LTHVP_FEATURES=str(root / "features"), LTHVP_DATA=str(root / "data"),
                      LTHVP_BUNDLES=str(root / "no_bundles"), LTHVP_STORE=str(root / "store" / "default"))


def pytest_unconfigure(config):
    root = getattr(config, "_lthvp_root", None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def shipped_template(pytestconfig) -> Path:
    """A store that imported the shipped bundles once; ``shipped`` tests get a copy."""
    from lthvp.results.seeding import seed_store
    from lthvp.results.store import ResultStore

    directory = pytestconfig._lthvp_root / "shipped_template"
    store = ResultStore(directory)
    seed_store(store, REPO_CACHE)
    store.cache.close()
    return directory


@pytest.fixture(autouse=True)
def hermetic(request, pytestconfig, tmp_path_factory, monkeypatch):
    """A fresh default store per test (unless a module fixture chose one); for ``shipped`` tests
    the shipped bundles seed it, from a copy of the session's template."""
    session_default = str(pytestconfig._lthvp_root / "store" / "default")
    own_store = os.environ.get("LTHVP_STORE") != session_default
    store_dir = tmp_path_factory.mktemp("default_store") / "store"
    if request.node.get_closest_marker("shipped"):
        monkeypatch.setenv("LTHVP_BUNDLES", str(REPO_CACHE))
        if not own_store:
            shutil.copytree(request.getfixturevalue("shipped_template"), store_dir)
    if not own_store:
        monkeypatch.setenv("LTHVP_STORE", str(store_dir))
    yield


@pytest.fixture
def store(tmp_path):
    from lthvp.results.store import ResultStore

    return ResultStore(tmp_path / "store")


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Streamlit's AppTest runs app.py as ``__main__`` and leaves it in ``sys.modules``; a later
    test that spawns processes (Dask's nannies) would then re-run app.py in every child, where it
    fails. Each test gets the interpreter's own ``__main__`` back."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main
