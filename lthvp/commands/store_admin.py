"""``python -m lthvp store check|delete|repair``: find and remove stored results that fail the schema.

Plain functions that print and return an exit code (0 fine, 1 problems found, 2 cannot proceed),
so the CLI only wires them. ``check`` never writes; ``delete`` (:mod:`lthvp.commands.store_ops`,
with the steps the commands share) removes results in one transaction,
records each removal (``deleted:<hash>`` with its time) and forgets the finished job of each
removed hash, so the run can be submitted again; ``repair`` (:mod:`lthvp.commands.store_repair`)
deletes what ``check`` finds, or rebuilds a damaged ``cache.db`` from every row that can still be
read. ``check`` tells a damaged database from one that cannot be written (a full disk, a read-only
store), which it checks read-only and never calls damaged; a value file that cannot be read is
named by its result.
"""

from __future__ import annotations

import sqlite3
import sys

from lthvp.commands.store_ops import _directory, _open, deletions, delete, integrity  # noqa: F401 (the CLI's names)
from lthvp.commands.store_repair import repair  # noqa: F401 (store repair)
from lthvp.results.store import StoreError
from lthvp.results.store_budget import STORE_ENV, human, store_limit, used_bytes


def check(store_dir=None, out=None, err=None) -> int:
    """Validate every stored result; list the bad ones and how to remove them."""
    out, err = out or sys.stdout, err or sys.stderr
    directory = _directory(store_dir)
    store = _open(directory, err)
    if store is None:
        print(f"the database file itself is damaged, so SQLite cannot open it as it is: stop the app and the "
              f"workers, then `python -m lthvp store repair --store {directory}` rebuilds it from every row that "
              f"can still be read, or move it aside to start an empty store (`python -m lthvp import BUNDLE` "
              f"restores others)", file=err)
        return 2
    if store is False:
        return 2
    damaged, access = integrity(directory)
    if store.read_only or access:
        print(f"note: the store cannot be written ({store.read_only or access}); checked read-only", file=out)
    try:
        problems = store.problems()
        n, removed = len(store.hashes()), deletions(store)
    except (sqlite3.DatabaseError, StoreError) as e:  # damage that stops a query: named, never a traceback
        for line in (damaged or [str(e)])[:20]:
            print(f"sqlite: {line}", file=out)
        print(f"the database is damaged and stops reading ({e}): no result can be checked; run python -m lthvp "
              f"store repair --store {directory} (it keeps every row SQLite can still read)", file=out)
        return 1
    for key, problem in problems.items():
        print(f"bad {key}: {problem}", file=out)
    for line in damaged[:20]:
        print(f"sqlite: {line}", file=out)
    print(f"{n} results checked, {len(problems)} bad" + (f", {len(removed)} deleted earlier" if removed else "")
          + ("; the database reports damage (see sqlite: lines; `store repair` rebuilds it)" if damaged else ""),
          file=out)
    print(f"size {human(used_bytes(store.cache))} of its {human(store_limit())} budget ({STORE_ENV})", file=out)
    if problems:
        print(f"remove them with: python -m lthvp store delete --store {directory} {' '.join(problems)}", file=out)
    return 1 if problems or damaged else 0


def run(args) -> int:
    if args.store_command == "check":
        return check(args.store)
    if args.store_command == "repair":
        return repair(args.store)
    return delete(args.hashes, args.store)
