"""Opening a diskcache directory safely: the one place the results store and the job queue create,
check and open their ``cache.db`` (no eviction, no size limit).

Only a directory this function creates is made private (0700); an existing one is never chmodded.
A 0-byte or corrupt ``cache.db`` raises the caller's error (``unreadable(reason)``) with the
caller's recovery steps instead of a sqlite traceback on every command.

"Cannot write" is told apart from "cannot read": a full disk, a read-only file system or file, a
missing permission (SQLite's FULL, READONLY, IOERR, CANTOPEN, PERM, BUSY codes; ENOSPC, EROFS,
EACCES) says nothing about the database's content. Such a store opens read-only
(:class:`ReadOnlyCache`) when the caller allows it, otherwise it raises :class:`CannotWrite`;
never the caller's "damaged" error.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import diskcache

EMPTY_DB_GRACE_S = 10.0  # a 0-byte cache.db younger than this is another process creating it
_WRITE_CODES = {3: "permission denied", 5: "the database is locked", 6: "the database is locked",
                7: "out of memory", 8: "read-only", 10: "disk I/O error (often a full disk)",
                13: "the disk is full", 14: "cannot open the database file", 23: "not authorised"}
_WRITE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
                 errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted", errno.EIO: "disk I/O error"}


class CannotWrite(OSError, ValueError):
    """The store's files cannot be written (full disk, read-only, no permission); nothing says the
    database is damaged. A ValueError too, so the pages' one-line error handling shows it."""


def cannot_write(err: BaseException) -> str | None:
    """Why ``err`` means "cannot write" rather than "cannot read" (a damaged file); None otherwise."""
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _WRITE_CODES:
            return f"{_WRITE_CODES[code & 0xFF]} ({getattr(err, 'sqlite_errorname', code)})"
        return None
    if isinstance(err, OSError) and err.errno in _WRITE_ERRNOS:
        return f"{_WRITE_ERRNOS[err.errno]} ({errno.errorcode.get(err.errno, err.errno)})"
    return None


def connect_read_only(db: Path) -> sqlite3.Connection:
    """A read-only connection that writes nothing beside ``db``; falls back to ``immutable=1``
    (no -shm needed, a -wal not replayed) where the directory cannot take SQLite's -shm file."""
    last = None
    for flags in ("mode=ro", "immutable=1"):
        try:
            con = sqlite3.connect(f"file:{quote(str(db))}?{flags}", uri=True, isolation_level=None)
            con.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return con
        except sqlite3.Error as err:
            last = err
            if not cannot_write(err):
                raise
    raise last


class ReadOnlyCache(diskcache.Cache):
    """A diskcache read through :func:`connect_read_only`: every read works, every write fails in
    SQLite (the store refuses writes before that, naming ``reason``, or the damage when it is None)."""

    def __init__(self, directory: Path, reason: str | None):  # no super().__init__: that writes the Settings table
        self._directory, self._timeout, self._local, self._txn_id = str(directory), 60, threading.local(), None
        self.reason = reason
        settings = dict(self._sql("SELECT key, value FROM Settings").fetchall())
        for key, value in settings.items():
            if not key.startswith(("sqlite_", "disk_")):
                object.__setattr__(self, key, value)
        self._disk = diskcache.Disk(self._directory, **{k[5:]: v for k, v in settings.items() if k.startswith("disk_")})
        ((self._page_size,),) = self._sql("PRAGMA page_size").fetchall()

    @property
    def _con(self):
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = connect_read_only(Path(self._directory) / "cache.db")
        return con


def _damaged(db: Path) -> bool:
    """Whether SQLite's quick_check, read-only, finds ``db`` damaged (not merely unreadable for want
    of space or permission)."""
    try:
        con = connect_read_only(db)
        try:
            return [r[0] for r in con.execute("PRAGMA quick_check(1)").fetchall()] != ["ok"]
        finally:
            con.close()
    except sqlite3.Error as err:
        return cannot_write(err) is None


def open_cache(path: str | os.PathLike, what: str, unreadable: Callable[[str], Exception],
               read_only_fallback: bool = False) -> diskcache.Cache:
    """``what`` names the directory in messages ("the store path"); ``unreadable(reason)`` builds
    the error raised for a damaged ``cache.db``. A cache that cannot be written opens as a
    :class:`ReadOnlyCache` with ``read_only_fallback``, else raises :class:`CannotWrite`."""
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
    if read_only_fallback and db.is_file() and db.stat().st_size and _damaged(db):
        try:  # opened without diskcache's own start-up writes; the store refuses every other write
            return ReadOnlyCache(directory, None)
        except sqlite3.Error as err:
            raise unreadable(f"cache.db: {err}") from None
    try:
        cache = diskcache.Cache(str(directory), eviction_policy="none", size_limit=2 ** 62)
        cache.get("version")
    except (sqlite3.Error, OSError) as err:
        reason = cannot_write(err)
        if reason is None and isinstance(err, sqlite3.DatabaseError):
            raise unreadable(f"cache.db: {err}") from None
        if reason is None:
            raise
        if read_only_fallback and db.is_file():
            try:
                return ReadOnlyCache(directory, reason)
            except sqlite3.Error as second:
                if not cannot_write(second):
                    raise unreadable(f"cache.db: {second}") from None
        raise CannotWrite(f"{what} {directory} cannot be written ({reason}); it is not reported damaged: free space "
                          f"or make it writable, then try again") from None
    return cache
