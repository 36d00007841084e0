"""The store commands' shared steps: the store directory a command names, SQLite's read-only
integrity check (telling damage from a file that cannot be accessed), opening a store with a
one-line error, and ``store delete`` (used by ``repair`` for the results ``check`` rejects).
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

from lthvp.compute.jobs import JobQueue, jobs_dir
from lthvp.results.disk_cache import CannotWrite, cannot_write, connect_read_only
from lthvp.results.store import ResultStore, StoreError

HASH = re.compile(r"[0-9a-f]{16}")


def _directory(store_dir) -> Path:
    """The named store, or the default when none is named; an empty name is refused (Path("") is
    ".", which once made ``--store ''`` open a store in the current folder)."""
    from lthvp.paths import default_store_dir

    if store_dir is not None and not str(store_dir).strip():
        raise ValueError("--store is empty; name the store's directory, or leave --store out for the default store")
    return Path(store_dir) if store_dir is not None else default_store_dir()


def integrity(directory: Path) -> tuple[list[str], str | None]:
    """SQLite's own integrity check of ``cache.db``, read-only: (its complaints, [] when the file is
    sound; why the file cannot be read at all for a reason that is not its content, or None)."""
    if (directory / "cache.db").stat().st_size == 0:
        return ["cache.db is empty (0 bytes)"], None
    try:
        con = connect_read_only(directory / "cache.db")
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        reason = cannot_write(err)
        return ([], reason) if reason else ([str(err)], None)
    except OSError as err:
        return [], cannot_write(err) or str(err)
    return ([] if rows == ["ok"] else [line for row in rows for line in str(row).splitlines() if line.strip()]), None


def deletions(store: ResultStore) -> dict[str, str]:
    """hash -> when it was removed with ``store delete``."""

    out = {}
    for key in store.cache.iterkeys():
        if isinstance(key, str) and key.startswith("deleted:"):
            out[key[len("deleted:"):]] = json.loads(store.cache[key]).get("deleted", "?")
    return out


def _open(directory: Path, err):
    """The store, or False when there is none (said on ``err``), or None when it is damaged."""
    if not (directory / "cache.db").is_file():
        print(f"error: no results store at {directory} (no cache.db)", file=err)
        return False
    try:
        return ResultStore(directory)
    except CannotWrite as e:  # not even readable read-only: not damage, but nothing to work on
        print(f"error: {e}", file=err)
        return False
    except StoreError as e:
        print(f"error: {e}", file=err)
        return None


def delete(hashes, store_dir=None, out=None, err=None) -> int:
    """Remove the named results (and their finished jobs); unknown hashes are reported."""
    out, err = out or sys.stdout, err or sys.stderr
    hashes = list(dict.fromkeys(hashes))
    malformed = [h for h in hashes if not HASH.fullmatch(h)]
    if not hashes or malformed:
        print(f"error: name results by their 16-hex hash, got {malformed[:5] or 'none'}", file=err)
        return 2
    directory = _directory(store_dir)
    store = _open(directory, err)
    if not store:
        return 2
    removed = store.delete(hashes)
    if removed and (jobs_dir(directory) / "cache.db").is_file():
        queue = JobQueue.for_store(directory)
        for key in removed:
            queue.forget(key)
    missing = [h for h in hashes if h not in removed]
    print(f"deleted {len(removed)} result(s)" + (f": {' '.join(removed)}" if removed else ""), file=out)
    if missing:
        print(f"not stored: {' '.join(missing)}", file=out)
    return 0 if not missing else 1
