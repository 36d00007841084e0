"""What the results store checks before it writes and when it reads one value (used by
:class:`lthvp.results.store.ResultStore`).

A store that cannot be written (full disk, read-only) refuses writes with :class:`CannotWrite`; a
store whose database SQLite's ``quick_check`` finds damaged refuses them with :class:`StoreError`
until ``store repair``, because a write into a broken b-tree spreads the damage (the 8 KB-of-garbage
probe once took writes). A stored value that cannot be read (a corrupt value file) is a
:class:`StoreError` that names the result, never a bare ``UnicodeDecodeError``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from lthvp.results.disk_cache import CannotWrite, cannot_write


class StoreError(ValueError):
    """A results store that cannot be opened as it is, or a value in it that cannot be read (the
    message says which, and how to recover)."""


def unreadable(directory: Path, reason: str) -> StoreError:
    return StoreError(f"the results store {directory} cannot be read ({reason}); recover with `python -m lthvp "
                      f"store check --store {directory}` (then `store delete HASH...`; `store repair` does both, or rebuilds "
                      f"an unreadable cache.db from what can still be read), or move "
                      f"{directory / 'cache.db'} aside to start an empty store that re-imports the shipped bundles")


def damage(cache) -> str | None:
    """SQLite's first quick_check complaint about the open database, None when it passes."""
    try:
        found = [row[0] for row in cache._sql("PRAGMA quick_check(1)").fetchall()]
    except sqlite3.DatabaseError as err:
        if cannot_write(err) is not None:
            raise
        found = [str(err)]
    return None if found == ["ok"] else " ".join(str(found[0]).split())[:200]  # one line


def refuse_writes(cache, directory: Path, read_only: str | None) -> None:
    """Raise unless the store can take a write: its database passes quick_check, and it is writable."""
    try:
        problem = damage(cache)
    except sqlite3.DatabaseError as err:
        raise CannotWrite(f"the results store {directory} cannot be read or written ({cannot_write(err)}); "
                          f"nothing was written") from None
    if problem:
        raise StoreError(f"the results store {directory} is damaged ({problem}); it takes no writes until `python "
                         f"-m lthvp store repair --store {directory}`; nothing was written")
    if read_only:
        raise CannotWrite(f"the results store {directory} cannot be written ({read_only}); nothing was written")


def read_text(cache, key: str) -> str | None:
    """The stored JSON text of result ``key`` (None when absent); an unreadable value file is named."""
    try:
        return cache.get(f"result:{key}")
    except (UnicodeDecodeError, OSError, sqlite3.DatabaseError) as err:  # a corrupt value file, a damaged page
        if isinstance(err, sqlite3.DatabaseError) and cannot_write(err) is not None:
            raise
        raise StoreError(f"result {key}: its stored value cannot be read ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:120]})") from None


def parse(key: str, text: str | None) -> dict | None:
    try:
        return json.loads(text) if text is not None else None
    except (ValueError, RecursionError) as err:  # JSONDecodeError, over-long ints: a damaged value, named
        raise StoreError(f"result {key}: its stored value is not JSON ({str(err)[:120]})") from None


def stored_keys(cache, prefix: str, directory: Path) -> list[str]:
    """The stored keys under ``prefix``, without it; damage that stops the scan is a StoreError."""
    try:
        return sorted(k[len(prefix):] for k in cache.iterkeys() if isinstance(k, str) and k.startswith(prefix))
    except sqlite3.DatabaseError as err:
        if cannot_write(err) is not None:
            raise CannotWrite(f"the results store {directory} cannot be read ({cannot_write(err)})") from None
        raise StoreError(f"the results store {directory} is damaged ({err}): run `python -m lthvp store repair "
                         f"--store {directory}`, which keeps every row SQLite can still read") from None
