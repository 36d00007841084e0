"""The test session is hermetic: every default location points into a temporary directory, no
shipped bundle seeds a store unless a test asks for the shipped study, and the repository's
cache/ is left as it was (checked for the whole session in conftest's sessionfinish hook)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lthvp import paths

REPO_CACHE = Path(__file__).resolve().parent.parent / "cache"


def _inside(path: Path, parent: Path) -> bool:
    return path.resolve().is_relative_to(parent.resolve())


def test_every_default_location_is_temporary():
    for where in (paths.default_store_dir(), paths.feature_dir(), paths.shipped_bundle_dir(),
                  Path(os.environ["LTHVP_DATA"])):
        assert not _inside(where, REPO_CACHE.parent), where
    assert list(paths.shipped_bundle_dir().glob("*.zip")) == []  # no shipped study by default


def test_a_store_opened_by_default_starts_empty():
    from lthvp.results.seeding import open_seeded_store

    store, messages = open_seeded_store(paths.default_store_dir())
    assert len(store) == 0 and messages == []


@pytest.mark.shipped
def test_a_shipped_test_gets_a_seeded_copy_that_is_its_own():
    from lthvp.results.seeding import open_seeded_store

    assert paths.shipped_bundle_dir() == REPO_CACHE
    assert not _inside(paths.default_store_dir(), REPO_CACHE.parent)
    store, messages = open_seeded_store(paths.default_store_dir())
    assert len(store) > 0 and messages == []  # the template already imported every shipped bundle
    store.delete([store.hashes()[0]])  # a change to this copy ...


@pytest.mark.shipped
def test_another_shipped_test_sees_the_template_unchanged():
    from lthvp.results.seeding import open_seeded_store
    from lthvp.results.store import read_bundle

    store, _ = open_seeded_store(paths.default_store_dir())
    shipped = sum(len(read_bundle(p)) for p in REPO_CACHE.glob("*.zip"))
    assert len(store) == shipped  # ... never reaches another test's copy
