"""The results store's size budget: how much one import may bring and how large the store may grow.

Every record is bounded on its own (record_schema), but nothing bounded their sum: a 1.6 MB bundle
of 47 valid records with 2000x2000 prediction arrays grew a shared store by 958 MB at 1.75 GB of
RAM. Two limits, read from the environment on every check so an operator can change them without
a restart, both checked before anything is written (a refused import changes nothing):

- ``LTHVP_MAX_IMPORT_BYTES`` (default 256 MiB): the results of one bundle, as they expand while
  being read (so a refused bundle is never held in memory whole), and the bytes one import adds;
- ``LTHVP_MAX_STORE_BYTES`` (default 8 GiB): the store's size after a write (``put`` or import),
  measured as SQLite's used pages plus the value files diskcache keeps beside it.

The shipped v2 study is a 33 MB import and a 36 MB store.
"""

from __future__ import annotations

import os
import re

IMPORT_ENV, STORE_ENV = "LTHVP_MAX_IMPORT_BYTES", "LTHVP_MAX_STORE_BYTES"
DEFAULT_IMPORT_BYTES = 256 * 1024 ** 2
DEFAULT_STORE_BYTES = 8 * 1024 ** 3
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


class BudgetError(ValueError):
    """A write that would exceed the size budget; nothing was written."""


def _limit(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    match = _SIZE.fullmatch(text)
    if not match:
        raise BudgetError(f"{name} must be a number of bytes, optionally with K/M/G/T (binary), e.g. 256M; "
                          f"got {text[:40]!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def import_limit() -> int:
    return _limit(IMPORT_ENV, DEFAULT_IMPORT_BYTES)


def store_limit() -> int:
    return _limit(STORE_ENV, DEFAULT_STORE_BYTES)


def human(n: int) -> str:
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def used_bytes(cache) -> int:
    """The store's size: the database's pages in use (deleted results free theirs, although the
    file keeps its size until VACUUM) plus the value files beside it."""
    free = 0
    try:  # diskcache has no public call for the freelist; without it the whole file counts
        ((free,),) = cache._sql("PRAGMA freelist_count").fetchall()
        free *= cache._page_size
    except (AttributeError, ValueError):
        pass
    return max(0, cache.volume() - free)


def check_read(total: int) -> None:
    """While a bundle is read: its results so far must fit one import."""
    limit = import_limit()
    if total > limit:
        raise BudgetError(f"the bundle's results expand beyond the per-import budget of {human(limit)} "
                          f"(set {IMPORT_ENV} to change it); nothing was imported")


def check_write(cache, adding: int, importing: bool) -> None:
    """Before a write of ``adding`` bytes: within one import's budget (imports only) and the store's."""
    if importing and adding > (limit := import_limit()):
        raise BudgetError(f"the import would add {human(adding)}, over the per-import budget of {human(limit)} "
                          f"(set {IMPORT_ENV} to change it); nothing was imported")
    used, limit = used_bytes(cache), store_limit()
    if used + adding > limit:
        raise BudgetError(f"the results store holds {human(used)}; adding {human(adding)} would exceed its budget "
                          f"of {human(limit)} (set {STORE_ENV}, or free space with `python -m lthvp store delete`); "
                          f"nothing was written")
