"""``python -m lthvp store repair``: make a store sound without ever making it worse.

First it tells "cannot read" (SQLite finds the database damaged) from "cannot write" (a full
disk, a read-only file system or file, no permission: ENOSPC, EROFS, EACCES, SQLite's FULL,
READONLY, IOERR). A readable database is never moved: results the schema rejects are deleted in it
(recorded), or, when the store cannot be written, repair says so and exits 2 with everything left
in place. A damaged database is rebuilt beside itself: every row SQLite can still read
(:mod:`lthvp.results.db_salvage`, damaged header or first page included) is validated again and
written into a new store in a staging folder; only when that succeeded is the damaged
``cache.db`` (with its -wal/-shm) moved to ``cache.db.broken-<time>``, its value files to
``cache.db.broken-<time>.values/`` and the new store put in its place. A failure before that
removes the staging folder and leaves the store exactly as it was. The report says what was
moved, kept and dropped, by hash. Refused while workers are alive (they hold the files open).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from lthvp.commands.store_ops import _directory, _open, delete, integrity
from lthvp.compute.jobs import JobQueue, jobs_dir
from lthvp.results.db_salvage import VALUE_FILE, salvage
from lthvp.results.disk_cache import CannotWrite, cannot_write
from lthvp.results.run_record import RunRecord
from lthvp.results.store import RecordError, ResultStore, StoreError
from lthvp.results.store_budget import STORE_ENV, BudgetError

PROBE_BYTES = 64 * 1024


def write_problem(directory: Path) -> str | None:
    """Why nothing can be written in ``directory`` (nor ``cache.db`` renamed), None when it can:
    a real write of 64 KiB, fsynced and removed, and ``cache.db`` opened for appending (a file marked
    immutable refuses that even to root)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".repair-probe-", dir=directory)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
        if (directory / "cache.db").is_file():
            with open(directory / "cache.db", "ab"):
                pass
    except OSError as err:
        return cannot_write(err) or f"{type(err).__name__}: {err}"
    return None


def _workers_alive(directory: Path, err) -> bool:
    if not (jobs_dir(directory) / "cache.db").is_file():
        return False
    try:
        alive = JobQueue.for_store(directory).workers()
    except (ValueError, OSError):  # a damaged or unwritable queue holds no live worker worth protecting
        alive = []
    if alive:
        print(f"error: {len(alive)} worker(s) use this store ({', '.join(w['id'] for w in alive)}): stop them "
              f"and the app, then repair", file=err)
    return bool(alive)


def repair(store_dir=None, out=None, err=None) -> int:
    """Delete the results ``check`` rejects from a sound store, or rebuild a damaged one; exit 2 with
    one line, changing nothing, when the store cannot be written."""
    import sys

    out, err = out or sys.stdout, err or sys.stderr
    directory = _directory(store_dir)
    if _workers_alive(directory, err):
        return 2
    if not (directory / "cache.db").is_file():
        print(f"error: no results store at {directory} (no cache.db)", file=err)
        return 2
    damage, access = integrity(directory)
    if access:
        print(f"error: cannot read {directory / 'cache.db'} ({access}); that is not damage to its content, so "
              f"nothing was moved or changed: fix access to the file, then repair", file=err)
        return 2
    blocked = write_problem(directory)
    if damage:
        if blocked:
            print(f"error: the database is damaged ({' '.join(damage[0].split())[:120]}) but {directory} cannot be written "
                  f"({blocked}): nothing was moved or changed; free space or make it writable, then repair", file=err)
            return 2
        return _rebuild(directory, damage, out, err)
    store = _open(directory, err)
    if not store:
        return 2
    try:
        bad = sorted(store.problems())
    except (sqlite3.DatabaseError, StoreError) as error:  # damage only a query shows: rebuild
        store.cache.close()
        return _rebuild(directory, [str(error)], out, err) if not blocked else _cannot(directory, blocked, err)
    if not bad:
        print("nothing to repair: the database is sound and every stored result passes the schema", file=out)
        return 0
    if blocked or store.read_only:
        return _cannot(directory, blocked or store.read_only, err, f"{len(bad)} result(s) fail the schema and "
                       f"stay until then: {' '.join(bad)}")
    try:
        return delete(bad, directory, out, err)
    except (CannotWrite, OSError, sqlite3.OperationalError) as error:
        return _cannot(directory, cannot_write(error) or str(error), err)


def _cannot(directory: Path, reason: str, err, more: str = "") -> int:
    print(f"error: {directory} cannot be written ({reason}); the database is readable and was left in place, "
          f"nothing moved" + (f"; {more}" if more else "") + "; free space or make it writable, then repair",
          file=err)
    return 2


def _build(staging: Path, texts: dict[str, str]) -> tuple[list[str], dict[str, str], list[str], dict[str, str]]:
    """Validate every salvaged ``result:`` text and write it into a new store in ``staging``, 50 at a
    time (one damage check and one budget check per batch): (kept, rejected hash -> why, over
    budget, not JSON hash -> why)."""
    fresh = ResultStore(staging)
    kept, rejected, over, broken, batch = [], {}, [], {}, []

    def flush():
        try:
            fresh._write(batch)
            kept.extend(r.hash for r in batch)
        except BudgetError:  # find which of the batch still fit, one by one
            for record in batch:
                try:
                    fresh._write([record])
                    kept.append(record.hash)
                except BudgetError:
                    over.append(record.hash)
        batch.clear()

    try:
        for key in sorted(k for k in texts if k.startswith("result:")):
            name = key[len("result:"):]
            try:
                document = json.loads(texts[key])
                batch.append(RunRecord.from_json(document, f"result {name}"))
            except (ValueError, RecursionError, TypeError) as error:  # not JSON, or fails the schema
                (rejected if isinstance(error, RecordError) else broken)[name] = str(error)[:160]
                continue
            if len(batch) == 50:
                flush()
        if batch:
            flush()
    finally:
        fresh.cache.close()  # the last connection checkpoints the WAL into cache.db
    return kept, rejected, over, broken


def _swap(directory: Path, staging: Path, broken: Path) -> tuple[list[str], int]:
    """Move the damaged database and its value files aside, the new store in; what moved."""
    moved = []
    for suffix in ("", "-wal", "-shm"):
        if (directory / f"cache.db{suffix}").exists():
            (directory / f"cache.db{suffix}").rename(Path(f"{broken}{suffix}"))
            moved.append(f"cache.db{suffix} -> {broken.name}{suffix}")
    old = [p for p in directory.glob("*/*/*.val") if VALUE_FILE.fullmatch(p.relative_to(directory).as_posix())]
    for path in old:
        target = Path(f"{broken}.values") / path.relative_to(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    for path in staging.glob("*/*/*.val"):
        target = directory / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    (staging / "cache.db").rename(directory / "cache.db")
    shutil.rmtree(staging, ignore_errors=True)
    return moved, len(old)


def _rebuild(directory: Path, damage: list[str], out, err) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    broken, staging = directory / f"cache.db.broken-{stamp}", directory / f".repair-{stamp}"
    found = salvage(directory / "cache.db", directory)
    unreadable = {k.split(":", 1)[1]: why for k, why in found.unreadable.items() if k.startswith(("result:", "file:"))}
    try:
        kept, rejected, over, not_json = _build(staging, found.texts)
        moved, values = _swap(directory, staging, broken)
    except (OSError, sqlite3.Error, StoreError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        reason = cannot_write(error) or f"{type(error).__name__}: {error}"
        where = "the damaged database is still in place as cache.db, nothing was moved" \
            if (directory / "cache.db").exists() else f"the damaged database is at {broken}"
        print(f"error: could not write the rebuilt store ({reason}); {where}; free space or make it writable, "
              f"then repair", file=err)
        return 2
    unreadable.update(not_json)
    forgotten = _forget_lost_jobs(directory, set(kept))
    print(f"the database was damaged ({' '.join(damage[0].split())[:120]}); read: {'; '.join(found.steps)}", file=out)
    print(f"moved: {', '.join(moved)}" + (f"; {values} old value file(s) -> {broken.name}.values/" if values else ""),
          file=out)
    print(f"kept: recovered {len(kept)} result(s) into a new cache.db: {' '.join(kept) or '-'}", file=out)
    for key, why in sorted(rejected.items()):
        print(f"dropped {key}: failed the schema: {why}", file=out)
    for key in over:
        print(f"dropped {key}: does not fit the size budget ({STORE_ENV})", file=out)
    for key, why in sorted(unreadable.items()):
        print(f"dropped {key}: cannot be read: {why}", file=out)
    print(f"recovered {len(kept)} result(s), dropped {len(rejected) + len(over) + len(unreadable)}"
          + (f"; forgot {forgotten} finished job(s) whose result was lost, so they can run again" if forgotten else "")
          + "; rows SQLite could not read at all are lost: re-import their bundles (python -m lthvp import BUNDLE)",
          file=out)
    return 0


def _forget_lost_jobs(directory: Path, kept: set[str]) -> int:
    """A lost result's finished job would block its rerun: forget it."""
    if not (jobs_dir(directory) / "cache.db").is_file():
        return 0
    forgotten = 0
    try:
        queue = JobQueue.for_store(directory)
        for job in queue.jobs():
            if job["state"] == "done" and job["id"] not in kept:
                queue.forget(job["id"])
                forgotten += 1
    except (ValueError, OSError):
        pass
    return forgotten
