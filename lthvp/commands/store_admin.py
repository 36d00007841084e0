"""``python -m lthvp store check|delete``: find and remove stored results that fail the schema.

Plain functions that print and return an exit code (0 fine, 1 problems found, 2 cannot proceed),
so the CLI only wires them. ``check`` never writes; ``delete`` removes results in one transaction,
records each removal (``deleted:<hash>`` with its time) and forgets the finished job of each
removed hash, so the run can be submitted again; ``repair`` deletes what ``check`` finds, or, when
``cache.db`` itself is unreadable, moves it aside and rebuilds the store from every result that can
still be read (its rows, and the large values diskcache keeps as files), each validated again.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from pathlib import Path

from lthvp.compute.jobs import JobQueue, jobs_dir
from lthvp.results.store import RecordError, ResultStore, StoreError
from lthvp.results.store_budget import STORE_ENV, BudgetError, human, store_limit, used_bytes

HASH = re.compile(r"[0-9a-f]{16}")


def _directory(store_dir) -> Path:
    """The named store, or the default when none is named; an empty name is refused (Path("") is
    ".", which once made ``--store ''`` open a store in the current folder)."""
    from lthvp.paths import default_store_dir

    if store_dir is not None and not str(store_dir).strip():
        raise ValueError("--store is empty; name the store's directory, or leave --store out for the default store")
    return Path(store_dir) if store_dir is not None else default_store_dir()


def integrity(directory: Path) -> list[str]:
    """SQLite's own integrity check of ``cache.db``, read-only; [] when the file is sound."""
    db = directory / "cache.db"
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        return [str(err)]
    return [] if rows == ["ok"] else rows


def deletions(store: ResultStore) -> dict[str, str]:
    """hash -> when it was removed with ``store delete``."""
    import json

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
    except StoreError as e:
        print(f"error: {e}", file=err)
        return None


def check(store_dir=None, out=None, err=None) -> int:
    """Validate every stored result; list the bad ones and how to remove them."""
    out, err = out or sys.stdout, err or sys.stderr
    directory = _directory(store_dir)
    store = _open(directory, err)
    if store is None:
        print(f"the database file itself is damaged, so no result can be read from it: stop the app and the "
              f"workers, move it aside (mv {directory / 'cache.db'} {directory / 'cache.db.broken'}, and any "
              f"cache.db-wal / cache.db-shm beside it); the next start opens an empty store, seeded from the "
              f"shipped bundles, and `python -m lthvp import BUNDLE` restores others", file=err)
        return 2
    if store is False:
        return 2
    damaged = integrity(directory)
    problems = store.problems()
    for key, problem in problems.items():
        print(f"bad {key}: {problem}", file=out)
    for line in damaged[:20]:
        print(f"sqlite: {line}", file=out)
    n = len(store.hashes())
    removed = deletions(store)
    print(f"{n} results checked, {len(problems)} bad" + (f", {len(removed)} deleted earlier" if removed else "")
          + ("; the database reports damage (see sqlite: lines)" if damaged else ""), file=out)
    print(f"size {human(used_bytes(store.cache))} of its {human(store_limit())} budget ({STORE_ENV})", file=out)
    if problems:
        print(f"remove them with: python -m lthvp store delete --store {directory} {' '.join(problems)}", file=out)
    return 1 if problems or damaged else 0


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


def _salvage(broken: Path, directory: Path) -> list[str]:
    """JSON texts of results still readable from a moved-aside ``cache.db`` and from the value
    files beside it (diskcache keeps values over 32 KB as ``*.val`` files)."""
    texts = []
    try:
        con = sqlite3.connect(f"file:{broken}?mode=ro", uri=True)
        try:
            for value, filename in con.execute("SELECT value, filename FROM Cache WHERE key LIKE 'result:%'"):
                if isinstance(value, str):
                    texts.append(value)
        finally:
            con.close()
    except sqlite3.DatabaseError:
        pass  # nothing readable in the database file itself
    for path in sorted(directory.glob("*/*/*.val")):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return texts


def repair(store_dir=None, out=None, err=None) -> int:
    """Make the store sound: delete the results ``check`` rejects, or rebuild a damaged one.

    Refused while workers are alive: a rebuild moves the database files that they hold open."""
    out, err = out or sys.stdout, err or sys.stderr
    directory = _directory(store_dir)
    if (jobs_dir(directory) / "cache.db").is_file():
        try:
            alive = JobQueue.for_store(directory).workers()
        except ValueError:  # a damaged queue holds no live worker worth protecting
            alive = []
        if alive:
            print(f"error: {len(alive)} worker(s) use this store ({', '.join(w['id'] for w in alive)}): stop them "
                  f"and the app, then repair", file=err)
            return 2
    store = _open(directory, err)
    if store is False:
        return 2
    if store is not None:
        try:
            bad = sorted(store.problems()) if not integrity(directory) else None
        except sqlite3.DatabaseError:
            bad = None  # damage that only shows inside a query: rebuild
        if bad is not None:
            if not bad:
                print("nothing to repair: every stored result passes the schema", file=out)
                return 0
            return delete(bad, directory, out, err)
        store.cache.close()
    return _rebuild(directory, out)


def _rebuild(directory: Path, out) -> int:
    broken = directory / f"cache.db.broken-{time.strftime('%Y%m%d-%H%M%S')}"
    for suffix in ("", "-wal", "-shm"):
        if (directory / f"cache.db{suffix}").exists():
            (directory / f"cache.db{suffix}").rename(Path(f"{broken}{suffix}"))
    records, rejected, over = {}, 0, 0
    for text in _salvage(broken, directory):
        try:
            record = json.loads(text)
        except ValueError:
            continue  # another kind of value (a row, a job)
        if isinstance(record, dict) and "config" in record and "hash" in record:
            records.setdefault(str(record["hash"]), record)
    fresh = ResultStore(directory)
    for record in records.values():
        try:
            fresh.put(record)
        except BudgetError:
            over += 1
        except RecordError:
            rejected += 1
    forgotten = 0
    if (jobs_dir(directory) / "cache.db").is_file():  # a lost result's finished job would block its rerun
        try:
            queue = JobQueue.for_store(directory)
            for job in queue.jobs():
                if job["state"] == "done" and not fresh.has(job["id"]):
                    queue.forget(job["id"])
                    forgotten += 1
        except ValueError:
            pass
    print(f"moved the damaged database to {broken}; recovered {len(records) - rejected - over} result(s) into a new "
          f"cache.db" + (f", {rejected} failed the schema and were left out" if rejected else "")
          + (f", {over} did not fit the size budget ({STORE_ENV}) and were left out" if over else "")
          + (f"; forgot {forgotten} finished job(s) whose result was lost, so they can run again" if forgotten else "")
          + "; results that cannot be read are lost: re-import their bundles (python -m lthvp import BUNDLE)", file=out)
    return 0


def run(args) -> int:
    if args.store_command == "check":
        return check(args.store)
    if args.store_command == "repair":
        return repair(args.store)
    return delete(args.hashes, args.store)
