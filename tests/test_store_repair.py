"""Issue 29, item 6: `store repair` never makes a store worse. Real files throughout: a real
diskcache store damaged byte by byte, a real tmpfs filled to the brim and a real read-only bind
mount (both skip with the reason where mounting is not permitted)."""

from __future__ import annotations

import errno
import gc
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import make_record  # noqa: E402

from lthvp.commands import store_admin  # noqa: E402
from lthvp.commands.cli import main  # noqa: E402
from lthvp.results.disk_cache import CannotWrite, cannot_write  # noqa: E402
from lthvp.results.metrics import evaluate  # noqa: E402
from lthvp.results.predictions import encode_probs  # noqa: E402
from lthvp.results.store import ResultStore, StoreError, read_bundle  # noqa: E402

PAGE = 4096


def _large(seed: int) -> dict:
    """A record over diskcache's 32 KB: kept as a value file beside cache.db."""
    record = make_record(seed)
    probs = np.random.default_rng(seed).dirichlet(np.ones(10), size=2000)
    record["predictions"] = {"test": encode_probs(probs)}
    record["reliability"] = evaluate(probs, np.random.default_rng(seed + 1).integers(0, 10, size=2000))["reliability"]
    return record


def _make_store(directory: Path, small: int, large: int = 0, bad: bool = False) -> list[str]:
    """A closed store of ``small`` inline and ``large`` value-file results (and one written past the
    schema, as an old version might have); returns the hashes of the valid ones."""
    store = ResultStore(directory)
    hashes = []
    for i in range(small + large):
        record = make_record(200 + i) if i < small else _large(200 + i)
        store.put(record)
        hashes.append(record["hash"])
    if bad:
        record = {**make_record(999), "metrics": {**make_record(999)["metrics"], "accuracy": 2.0}}
        store.cache.set(f"result:{record['hash']}", json.dumps(record))
    _close(store)
    return sorted(hashes)


def _close(*stores) -> None:
    for store in stores:
        store.cache.close()
    del stores
    gc.collect()


def _result_rows(db: Path) -> dict[int, tuple[str, str | None]]:
    """rowid -> (hash, value file or None) of the results SQLite reads from a sound ``db``."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT rowid, key, filename FROM Cache WHERE key LIKE 'result:%'").fetchall()
    finally:
        con.close()
    return {rowid: (key[len("result:"):], filename) for rowid, key, filename in rows}


def _leaf_pages(db: Path) -> dict[int, int]:
    """rowid -> the Cache leaf page that holds it, from SQLite's dbstat (leaves in b-tree order)."""
    con = sqlite3.connect(db)
    try:
        leaves = con.execute("SELECT pageno, ncell FROM dbstat WHERE name = 'Cache' AND pagetype = 'leaf' "
                             "ORDER BY path").fetchall()
        rowids = [r for (r,) in con.execute("SELECT rowid FROM Cache ORDER BY rowid")]
    finally:
        con.close()
    page_of, i = {}, 0
    for page, cells in leaves:
        page_of.update({rowid: page for rowid in rowids[i:i + cells]})
        i += cells
    assert i == len(rowids)
    return page_of


def _overwrite(db: Path, offset: int, data: bytes) -> bytes:
    blob = bytearray(db.read_bytes())
    blob[offset:offset + len(data)] = data
    db.write_bytes(bytes(blob))
    return bytes(blob)


def _repair(directory: Path, capsys) -> tuple[int, str, str]:
    code = main(["store", "repair", "--store", str(directory)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.mark.parametrize("zeroed", [100, PAGE], ids=["first 100 bytes", "whole first page"])
def test_a_zeroed_header_or_first_page_gives_back_every_row(tmp_path, capsys, zeroed):
    """The probe: 100 zeroed bytes once kept 1 of 19 results although a copied header gives 19."""
    directory = tmp_path / "store"
    hashes = _make_store(directory, small=16, large=3)
    db = directory / "cache.db"
    pristine = db.read_bytes()
    damaged = _overwrite(db, 0, bytes(zeroed))
    assert store_admin.check(directory) == 2  # SQLite cannot open it as it is
    capsys.readouterr()
    oracle = tmp_path / "oracle.db"  # what SQLite reads once the original first page is back
    oracle.write_bytes(pristine[:PAGE] + damaged[PAGE:])
    assert len(_result_rows(oracle)) == len(hashes) == 19
    code, out, _ = _repair(directory, capsys)
    assert code == 0 and "recovered 19 result(s), dropped 0" in out
    assert "moved: cache.db -> cache.db.broken-" in out and "no valid SQLite header" in out
    again = ResultStore(directory)
    assert again.hashes() == hashes and again.problems() == {}
    (broken,) = directory.glob("cache.db.broken-*[0-9]")
    assert broken.read_bytes() == damaged  # kept as it was, never patched in place
    _close(again)
    assert store_admin.check(directory) == 0


def test_garbage_in_the_middle_gives_back_every_row_sqlite_can_read(tmp_path, capsys, caplog):
    """8 KB of garbage over two leaf pages in the middle: the store refuses writes, check says so,
    export writes what it can read and names the rest, and repair keeps exactly the results whose
    row SQLite can still read (plus those kept as value files, whose file survives)."""
    directory = tmp_path / "store"
    hashes = _make_store(directory, small=18, large=3)
    db = directory / "cache.db"
    page_of, results = _leaf_pages(db), _result_rows(db)
    leaves = sorted(set(page_of.values()))
    first = leaves[len(leaves) // 2]
    assert first + 1 in leaves  # two consecutive leaf pages: 8 KB
    # what SQLite can no longer read: the inline results whose row lies on those pages (a value
    # file's result survives its row: repair reads the file)
    on_damaged = {rowid: row for rowid, row in results.items() if page_of[rowid] in (first, first + 1)}
    lost = {h for h, filename in on_damaged.values() if not filename}
    assert lost and len(lost) < len(hashes), "the damage must cost some inline results, not all"
    damaged = _overwrite(db, (first - 1) * PAGE, np.random.default_rng(7).bytes(2 * PAGE))

    store = ResultStore(directory)  # it opens, but takes no write until repaired
    with pytest.raises(StoreError, match="damaged.*store repair"):
        store.put(make_record(500))
    with pytest.raises(StoreError, match="damaged"):
        store.delete([hashes[0]])
    _close(store)
    assert db.read_bytes() == damaged
    assert store_admin.check(directory) == 1 and "store repair" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "out.zip"), "--store", str(directory)]) == 0
    unread = {h for h, _ in on_damaged.values()}
    assert f"exported {len(hashes) - len(unread)} results" in capsys.readouterr().out
    assert {r.hash for r in read_bundle(tmp_path / "out.zip")} == set(hashes) - unread
    assert all(f"result {h}: its stored value cannot be read" in caplog.text for h in unread)

    code, out, _ = _repair(directory, capsys)
    expected = set(hashes) - lost
    assert code == 0 and f"recovered {len(expected)} result(s)" in out
    again = ResultStore(directory)
    assert set(again.hashes()) == expected and again.problems() == {}
    again.put(make_record(500))  # repaired: writes again
    _close(again)


def test_garbage_over_an_interior_page_still_gives_back_the_leaves_below(tmp_path, capsys):
    """SQLite reaches no row through a destroyed root page; the intact leaves below it still hold
    every row, and repair reads them."""
    directory = tmp_path / "store"
    hashes = _make_store(directory, small=20)
    db = directory / "cache.db"
    con = sqlite3.connect(db)
    ((root, kind),) = con.execute("SELECT pageno, pagetype FROM dbstat WHERE name = 'Cache' AND path = '/'").fetchall()
    con.close()
    assert kind == "internal"
    _overwrite(db, (root - 1) * PAGE, np.random.default_rng(3).bytes(PAGE))
    code, out, _ = _repair(directory, capsys)
    assert code == 0 and "read from intact leaf pages" in out and f"recovered {len(hashes)} result(s)" in out
    again = ResultStore(directory)
    assert again.hashes() == hashes
    _close(again)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage" * 50, b'{"not": "closed'], ids=["not UTF-8", "not JSON"])
def test_a_corrupt_value_file_is_named_and_skipped(tmp_path, capsys, caplog, content):
    directory = tmp_path / "store"
    hashes = _make_store(directory, small=2, large=2)
    victim, filename = next(row for row in _result_rows(directory / "cache.db").values() if row[1])
    (directory / filename).write_bytes(content)

    assert store_admin.check(directory) == 1
    out = capsys.readouterr().out
    assert f"bad {victim}: " in out and "4 results checked, 1 bad" in out
    assert main(["export", str(tmp_path / "out.zip"), "--store", str(directory)]) == 0
    assert "exported 3 results" in capsys.readouterr().out and victim in caplog.text
    assert sorted(r.hash for r in read_bundle(tmp_path / "out.zip")) == sorted(set(hashes) - {victim})
    code, out, _ = _repair(directory, capsys)
    assert code == 0 and f"deleted 1 result(s): {victim}" in out
    assert store_admin.check(directory) == 0


@pytest.fixture
def mount(tmp_path):
    """mount(args, target): a real mount, undone afterwards; skips where mounting is not permitted."""
    done = []

    def _mount(args: list[str], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount here ({result.stderr.strip()[:100]}): needs root with CAP_SYS_ADMIN")
        done.append(target)

    yield _mount
    gc.collect()
    for target in reversed(done):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _fill(directory: Path) -> None:
    """Write until the file system has not one byte left."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0


def test_on_a_full_disk_repair_leaves_the_readable_database_in_place(tmp_path, capsys, mount):
    """The probe: on a full disk repair moved the healthy database aside and left an empty one."""
    disk = tmp_path / "disk"
    mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs"], disk)
    directory = disk / "store"
    hashes = _make_store(directory, small=5, large=1, bad=True)
    before = (directory / "cache.db").read_bytes()
    _fill(disk)

    code, out, err = _repair(directory, capsys)
    assert code == 2 and err.count("\n") == 1 and "disk is full" in err and "left in place" in err
    assert (directory / "cache.db").read_bytes() == before and not list(directory.glob("cache.db.broken*"))
    assert store_admin.check(directory) == 1  # the bad record; the database is not called damaged
    out = capsys.readouterr().out
    assert f"{len(hashes) + 1} results checked, 1 bad" in out and "damage" not in out and "read-only" in out
    store = ResultStore(directory)
    assert store.read_only and store.hashes() == sorted(hashes + [h for h in store.hashes() if h not in hashes])
    with pytest.raises(CannotWrite, match="cannot be written"):
        store.put(make_record(501))
    _close(store)

    (disk / "filler").unlink()  # a damaged database on a full disk: nothing moves either
    damaged = _overwrite(directory / "cache.db", 5 * PAGE, b"\xa5" * 2 * PAGE)
    _fill(disk)
    code, out, err = _repair(directory, capsys)
    assert code == 2 and "damaged" in err and "disk is full" in err and "nothing was moved" in err
    assert (directory / "cache.db").read_bytes() == damaged and not list(directory.glob("cache.db.broken*"))
    assert not list(directory.glob(".repair-*"))


def test_a_read_only_store_is_checked_read_only_and_repair_says_it_cannot_write(tmp_path, capsys, mount):
    source, view = tmp_path / "source", tmp_path / "view"
    hashes = _make_store(source, small=3, large=1, bad=True)
    mount(["--bind", str(source)], view)
    mount(["-o", "remount,bind,ro"], view)
    assert cannot_write(OSError(errno.EROFS, "x")) and not (view / "probe").exists()
    before = (source / "cache.db").read_bytes()

    code, out, err = _repair(view, capsys)
    assert code == 2 and err.count("\n") == 1 and "read-only" in err and "left in place" in err
    assert store_admin.check(view) == 1
    out = capsys.readouterr().out
    assert "checked read-only" in out and f"{len(hashes) + 1} results checked, 1 bad" in out and "damage" not in out
    store = ResultStore(view)
    assert store.read_only and len(list(store.records(hashes))) == len(hashes)
    with pytest.raises(CannotWrite):
        store.delete(hashes[:1])
    _close(store)
    assert (source / "cache.db").read_bytes() == before


@pytest.mark.parametrize("err, expected", [
    (OSError(errno.ENOSPC, "No space left on device"), "full"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only"),
    (OSError(errno.EACCES, "Permission denied"), "permission"),
    (OSError(errno.ENOENT, "No such file"), None),
    (ValueError("x"), None),
])
def test_cannot_write_is_told_from_cannot_read(err, expected):
    reason = cannot_write(err)
    assert (reason is None) if expected is None else expected in reason


def test_sqlite_errors_are_classified_by_their_code(tmp_path):
    db = tmp_path / "x.db"
    db.write_bytes(b"not a database at all" * 300)
    with pytest.raises(sqlite3.DatabaseError) as corrupt:
        sqlite3.connect(db).execute("SELECT * FROM sqlite_master").fetchall()
    assert cannot_write(corrupt.value) is None  # cannot read: damage
    sound = tmp_path / "y.db"
    sqlite3.connect(sound).execute("CREATE TABLE t (a)").connection.commit()
    con = sqlite3.connect(f"file:{sound}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as readonly:
        con.execute("INSERT INTO t VALUES (1)")
    assert "read-only" in cannot_write(readonly.value)
