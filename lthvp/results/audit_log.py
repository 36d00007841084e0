"""The audit log of a shared dashboard: who did what, when, to the store and its queue.

One SQLite table in ``<store>/audit.db``, beside the results store, append-only twice over:
triggers abort every UPDATE and DELETE, and each entry carries the sha256 of its fields chained
to the entry before, so an entry changed or removed after it was written (by hand, with the
triggers dropped) is named on read instead of trusted. Readers validate every row (types,
bounds, known actions, the chain) and report what fails; they never raise on a bad row.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lthvp.results.safe_files import printable

FILE = "audit.db"
ACTIONS = ("unlock", "queue", "cancel", "clear", "import", "import result", "delete")
LIMITS = {"who": 200, "how": 16, "client": 64, "action": 16, "detail": 2000}  # characters kept per field
GENESIS = "0" * 64  # the chain's value before the first entry
BUSY_TIMEOUT_S = 10.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL, who TEXT NOT NULL, how TEXT NOT NULL, client TEXT NOT NULL,
    action TEXT NOT NULL, detail TEXT NOT NULL, digest TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditError(ValueError):
    """The audit log cannot be written or read (the message says which and why)."""


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float  # seconds since the epoch (UTC)
    who: str  # the operator's name or login; "anonymous" on an open instance
    how: str  # "oidc", "secret" or "open": how the operator was identified
    client: str  # the browser's address as the server saw it ("" when unknown)
    action: str  # one of ACTIONS
    detail: str  # what was acted on, one printable line

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.at))


def clean(text, field: str) -> str:
    """One printable line of at most the field's limit (control characters escaped)."""
    return printable(" ".join(str(text).split()))[:LIMITS[field]]


def digest(prev: str, fields: dict) -> str:
    """sha256 over the previous entry's digest and this entry's fields (canonical JSON)."""
    body = json.dumps(fields, sort_keys=True, ensure_ascii=True, allow_nan=False)
    return hashlib.sha256((prev + body).encode()).hexdigest()


def _fields(entry: Entry) -> dict:
    return asdict(entry)


class AuditLog:
    def __init__(self, store_dir: str | os.PathLike):
        if not str(store_dir).strip():
            raise AuditError("the store path is empty; name a directory")
        self.path = Path(store_dir) / FILE

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            con.executescript(SCHEMA)
            return con
        except (OSError, sqlite3.Error) as err:
            raise AuditError(f"the audit log {self.path} cannot be opened ({err})") from None

    def append(self, who: str, how: str, action: str, detail: str, client: str = "") -> Entry:
        """Write one entry (its chain value computed inside one write transaction, so two
        sessions or processes appending at once keep one chain). Raises AuditError on failure:
        the caller then refuses the action instead of acting unrecorded."""
        if action not in ACTIONS:
            raise AuditError(f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}")
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            last = con.execute("SELECT seq, digest FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
            seq = (last[0] if last else 0) + 1
            entry = Entry(seq, round(time.time(), 3), clean(who, "who") or "anonymous", clean(how, "how"),
                          clean(client, "client"), action, clean(detail, "detail"))
            con.execute("INSERT INTO entries (seq, at, who, how, client, action, detail, digest) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (*_fields(entry).values(), digest(last[1] if last else GENESIS, _fields(entry))))
            con.execute("COMMIT")
            return entry
        except sqlite3.Error as err:
            raise AuditError(f"the audit log {self.path} cannot be written ({err})") from None
        finally:
            con.close()

    def read(self, newest: int | None = None) -> tuple[list[Entry], list[str]]:
        """(entries, problems): every row checked, the chain verified from the first entry; the
        ``newest`` valid entries are returned newest first. A missing log is an empty one."""
        if not self.path.exists():
            return [], []
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                rows = con.execute("SELECT seq, at, who, how, client, action, detail, digest FROM entries "
                                   "ORDER BY seq").fetchall()
            finally:
                con.close()
        except sqlite3.Error as err:
            raise AuditError(f"the audit log {self.path} cannot be read ({err})") from None
        entries, problems, prev, expected = [], [], GENESIS, 1
        for row in rows:
            seq, chain = row[0], row[-1]
            entry, problem = _check_row(row[:-1])
            gap = isinstance(seq, int) and seq != expected  # the entry after a gap cannot be linked: not judged
            if gap:
                problems.append(f"entries {expected}..{seq - 1} are missing (removed after they were written)")
            if entry is not None and problem is None and not gap and digest(prev, _fields(entry)) != chain:
                problem = "changed after it was written (its chain digest does not match)"
            if problem:
                problems.append(f"entry {printable(seq)}: {problem}")
            else:
                entries.append(entry)
            prev = chain if isinstance(chain, str) else GENESIS
            expected = (seq if isinstance(seq, int) else expected) + 1
        entries.reverse()
        return (entries if newest is None else entries[:newest]), problems


def _check_row(row: tuple) -> tuple[Entry | None, str | None]:
    """The row as an Entry, or the first thing wrong with it."""
    seq, at, *texts = row
    names = ("who", "how", "client", "action", "detail")
    if not isinstance(seq, int) or seq < 1:
        return None, "sequence number is not a positive integer"
    if not isinstance(at, (int, float)) or not 0 <= at < 1e11:
        return None, "time is not a plausible timestamp"
    for name, value in zip(names, texts):
        if not isinstance(value, str) or len(value) > LIMITS[name] or value != clean(value, name):
            return None, f"{name} is not one printable line of at most {LIMITS[name]} characters"
    entry = Entry(seq, float(at), *texts)
    if entry.action not in ACTIONS:
        return None, f"unknown action {printable(entry.action)!r}"
    return entry, None
