"""Every row of a diskcache ``Cache`` table that can still be read from a damaged ``cache.db``.

Three readings, each of what the one before could not give:

1. SQLite through the b-tree, on the file as it is (read-only), or, when its header or first page
   is gone, on a copy given a fresh header (or first page) of the right page size (a zeroed header
   once cost 18 of 19 results that a copied header gives back): the whole table in rowid order,
   then, if that stops at a damaged page, each rowid on its own, so one bad page costs only its rows;
2. the leaf pages themselves (:mod:`lthvp.results.sqlite_pages`), for rows whose leaf is intact
   but unreachable through a damaged interior page. Used only when reading 1 was incomplete, free
   pages aside, and a row whose ``deleted:`` marker is newer stays deleted.

Values diskcache keeps as files (``mode`` 3, text) are read from the store directory; a file that
cannot be read or decoded is reported by key, never raised.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import diskcache

from lthvp.results import sqlite_pages
from lthvp.results.disk_cache import connect_read_only

COLUMNS = "rowid, key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, filename, value"
MODE_RAW, MODE_TEXT = 1, 3
VALUE_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val")


@dataclass
class Salvage:
    texts: dict[str, str] = field(default_factory=dict)  # key -> stored text (str keys, text values)
    unreadable: dict[str, str] = field(default_factory=dict)  # key -> why its value could not be read
    steps: list[str] = field(default_factory=list)  # how the rows were read, for the report
    rows: int = 0  # Cache rows read in all
    failed_rowids: int = 0  # rowids whose lookup raised (their page is damaged)


def _rows_by_btree(con: sqlite3.Connection, top_hint: int) -> tuple[dict[int, tuple], int, bool]:
    """rowid -> row through SQLite; the count of rowids that raised; whether one scan read it all."""
    rows: dict[int, tuple] = {}
    try:
        for row in con.execute(f"SELECT {COLUMNS} FROM Cache ORDER BY rowid"):
            rows[row[0]] = row
        return rows, 0, True
    except sqlite3.DatabaseError:
        pass
    try:
        (top,) = con.execute("SELECT max(rowid) FROM Cache").fetchone()
    except sqlite3.DatabaseError:
        top = None
    failed = 0
    for rowid in range(1, max(top or 0, top_hint, max(rows, default=0)) + 1):
        if rowid in rows:
            continue
        try:
            row = con.execute(f"SELECT {COLUMNS} FROM Cache WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            failed += 1
            continue
        if row is not None:
            rows[rowid] = row
    return rows, failed, False


def _template(page_size: int, workdir: Path) -> bytes:
    """Page 1 of a fresh diskcache database of ``page_size``: the header and the schema that every
    diskcache database starts with (same tables, same root pages)."""
    directory = workdir / f"template-{page_size}"
    directory.mkdir()
    con = sqlite3.connect(directory / "cache.db")
    con.execute(f"PRAGMA page_size = {page_size}")
    con.close()
    diskcache.Cache(str(directory), eviction_policy="none").close()
    return (directory / "cache.db").read_bytes()[:page_size]


def _patched_copy(db: Path, data: bytes, workdir: Path, out: Salvage) -> tuple[Path, int]:
    page_size = sqlite_pages.guess_page_size(data)
    copy = bytearray(data)
    out.steps.append("cache.db has no valid SQLite header; on a copy: "
                     + sqlite_pages.patch_first_page(copy, _template(page_size, workdir), page_size))
    patched = workdir / "patched.db"
    patched.write_bytes(bytes(copy))
    if Path(f"{db}-wal").is_file():
        shutil.copyfile(f"{db}-wal", f"{patched}-wal")
    return patched, page_size


def _cells_as_rows(data: bytes, page_size: int) -> dict[int, tuple]:
    reserved = data[20] if sqlite_pages.header_page_size(data) == page_size else 0
    found = {}
    for cell in sqlite_pages.table_cells(data, page_size, reserved, sqlite_pages.free_pages(data, page_size)):
        c = cell.columns
        if len(c) == 12 and c[0] is None and isinstance(c[1], str) and c[9] in (0, 1, 2, 3, 4):
            found.setdefault(cell.rowid, (cell.rowid, *c[1:]))
    return found


def _resolve(rows: dict[int, tuple], directory: Path, out: Salvage) -> None:
    """Keep the text value of every string key: inline, or from its value file."""
    latest: dict[str, tuple] = {}
    for row in rows.values():
        key, store_time = row[1], row[3] or 0.0
        if isinstance(key, str) and (key not in latest or store_time >= (latest[key][3] or 0.0)):
            latest[key] = row
    for key, row in latest.items():
        mode, filename, value = row[9], row[10], row[11]
        if mode == MODE_RAW:
            if isinstance(value, str):  # other raw values (the int ``version``) are not records
                out.texts[key] = value
        elif mode == MODE_TEXT and isinstance(filename, str) and VALUE_FILE.fullmatch(filename):
            try:
                out.texts[key] = (directory / filename).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                out.unreadable[key] = f"value file {filename}: {type(err).__name__}: {str(err)[:100]}"
        else:
            out.unreadable[key] = f"a value a results store never writes (mode {mode}, file {str(filename)[:80]!r})"


def _orphans(rows: dict[int, tuple], directory: Path, out: Salvage) -> None:
    """Value files no salvaged row names (their row was on a lost page): a result's JSON, named by
    the hash inside it (the schema checks it again). diskcache removes a deleted key's file."""
    named = {row[10] for row in rows.values() if isinstance(row[10], str)}
    found = 0
    for path in sorted(directory.glob("*/*/*.val")):
        name = path.relative_to(directory).as_posix()
        if name in named or not VALUE_FILE.fullmatch(name):
            continue
        try:
            text = path.read_text(encoding="utf-8")
            record = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            out.unreadable[f"file:{name}"] = f"{type(err).__name__}: {str(err)[:100]}"
            continue
        if isinstance(record, dict) and isinstance(record.get("hash"), str) and "config" in record:
            if out.texts.setdefault(f"result:{record['hash']}", text) is text:
                found += 1
    if found:
        out.steps.append(f"{found} result(s) read from value files whose row was lost")


def _drop_deleted(rows: dict[int, tuple], extra: set[int]) -> int:
    """Rows found only on pages whose ``deleted:<hash>`` marker is newer stay deleted; how many."""
    deleted = {row[1][len("deleted:"):]: row[3] or 0.0 for row in rows.values()
               if isinstance(row[1], str) and row[1].startswith("deleted:")}
    dropped = 0
    for rowid in list(extra):
        key, when = rows[rowid][1], rows[rowid][3] or 0.0
        name = key.split(":", 1)[-1] if key.startswith(("result:", "row:")) else None
        if name in deleted and deleted[name] >= when:
            del rows[rowid]
            dropped += 1
    return dropped


def salvage(db: Path, directory: Path) -> Salvage:
    """Read what can be read of ``db`` (whose value files lie in ``directory``); writes only to a
    temporary directory, never beside the damaged file."""
    out = Salvage()
    data = db.read_bytes()
    with tempfile.TemporaryDirectory(prefix="lthvp-salvage-") as tmp:
        source, page_size = db, sqlite_pages.header_page_size(data)
        if page_size is None:
            source, page_size = _patched_copy(db, data, Path(tmp), out)
        scanned = _cells_as_rows(data, page_size)
        try:
            con = connect_read_only(source) if source == db else sqlite3.connect(source)
            try:
                rows, out.failed_rowids, whole = _rows_by_btree(con, max(scanned, default=0))
            finally:
                con.close()
        except sqlite3.DatabaseError as err:
            rows, whole = {}, False
            out.steps.append(f"SQLite cannot read the table at all ({err})")
        out.steps.append(f"SQLite read {len(rows)} row(s)" + ("" if whole else
                         f" one by one, {out.failed_rowids} rowid(s) on damaged pages"))
        if not whole:
            extra = set(scanned) - set(rows)
            rows.update({rowid: scanned[rowid] for rowid in extra})
            stale = _drop_deleted(rows, extra)
            out.steps.append(f"{len(extra) - stale} more row(s) read from intact leaf pages below damaged ones"
                             + (f" ({stale} deleted since, left deleted)" if stale else ""))
    out.rows = len(rows)
    _resolve(rows, directory, out)
    _orphans(rows, directory, out)
    return out
