"""Opening a diskcache directory safely: the one place the results store and the job queue create,
check and open their ``cache.db`` (no eviction, no size limit).

Only a directory this function creates is made private (0700); an existing one is never chmodded.
A 0-byte or corrupt ``cache.db`` raises the caller's error (``unreadable(reason)``) with the
caller's recovery steps instead of a sqlite traceback on every command.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Callable

import diskcache

EMPTY_DB_GRACE_S = 10.0  # a 0-byte cache.db younger than this is another process creating it


def open_cache(path: str | os.PathLike, what: str, unreadable: Callable[[str], Exception]) -> diskcache.Cache:
    """``what`` names the directory in messages ("the store path"); ``unreadable(reason)`` builds
    the error raised for a damaged ``cache.db``."""
    if not str(path).strip():  # checked before Path(), which turns "" into "."
        raise ValueError(f"{what} is empty; name a directory (e.g. --store cache/store)")
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{what} {directory} is a file, not a directory")
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    db = directory / "cache.db"
    if db.is_file() and db.stat().st_size == 0 and time.time() - db.stat().st_mtime > EMPTY_DB_GRACE_S:
        raise unreadable("cache.db is empty (0 bytes)")
    try:
        cache = diskcache.Cache(str(directory), eviction_policy="none", size_limit=2 ** 62)
        cache.get("version")
    except sqlite3.DatabaseError as err:
        raise unreadable(f"cache.db: {err}") from None
    return cache
