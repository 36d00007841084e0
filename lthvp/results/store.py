"""Results store (diskcache, no eviction) and result bundles (zip of plain data).

Values are JSON strings, so the store never unpickles anything. Each result is kept twice:
the full record under ``result:<hash>`` and a small flat row under ``row:<hash>`` so pages can
build their tables without reading prompts, curves and bin tables. ``version`` increments on
every write; readers cache on it. Every record is checked by :mod:`lthvp.results.record_schema` before it
is written (``put`` and bundle import alike); docs/RELIABILITY.md lists the limits. What is
written is a :class:`RunRecord`'s JSON form: every field, null where a run has none. Writes stay
within the size budget (:mod:`lthvp.results.store_budget`); a bundle is written out through
:func:`lthvp.results.safe_files.write_atomically`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

from lthvp.results.disk_cache import open_cache
from lthvp.results.provenance import now_iso
from lthvp.results.record_schema import RecordError, flat_row, stored_problem  # noqa: F401 (re-exported)
from lthvp.results.run_record import RunRecord
from lthvp.results import bundle_format, store_budget
from lthvp.results.bundle_format import BundleError
from lthvp.results.safe_files import write_atomically
from lthvp.results.store_guard import StoreError, parse, read_text, refuse_writes, stored_keys, unreadable  # noqa: F401

BUNDLE_FORMAT = bundle_format.FORMAT
BUNDLE_VERSION = bundle_format.VERSION  # what export writes; read_bundle reads versions 1 and 2
MAX_MEMBER_BYTES = 32 * 1024 * 1024  # one member, as read (a record with two large prediction arrays fits)
MAX_BUNDLE_BYTES = 512 * 1024 * 1024  # the zip file
MAX_EXPANDED_BYTES = 1024 * 1024 * 1024  # all members together, as read
MAX_MEMBERS = 200_000



class ResultStore:
    """A store that cannot be written (full disk, read-only) opens read-only (``read_only`` says why);
    it, and one whose database is damaged, refuses writes (:mod:`lthvp.results.store_guard`)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.cache = open_cache(directory, "the store path", lambda reason: unreadable(self.directory, reason),
                                read_only_fallback=True)
        self.read_only: str | None = getattr(self.cache, "reason", None)
        self.unreadable: dict[str, str] = {}  # hash -> why its stored value could not be read (records() skipped it)

    # results -----------------------------------------------------------------------------
    def put(self, record: RunRecord | dict) -> None:
        """Validate one finished result (a RunRecord, or its JSON form from a worker), then write
        record + row + version bump in one transaction."""
        document = record.to_json() if isinstance(record, RunRecord) else record
        self._write([RunRecord.from_json(document)])

    def _write(self, records: list[RunRecord], importing: bool = False) -> None:
        """Serialise first, then check the size budget and write inside one transaction (two
        writers cannot both pass the check and together exceed it)."""
        texts = [(r.hash, json.dumps(doc := r.serialisable(), allow_nan=False), json.dumps(flat_row(doc), allow_nan=False))
                 for r in records]
        if not texts:  # nothing to write (a bundle already stored): no budget to check, no version bump
            return
        refuse_writes(self.cache, self.directory, self.read_only)
        with self.cache.transact():
            store_budget.check_write(self.cache, sum(len(a) + len(b) for _, a, b in texts), importing)
            for key, document, row in texts:
                self.cache.set(f"result:{key}", document)
                self.cache.set(f"row:{key}", row)
            self.cache.incr("version", default=0)

    def get(self, key: str) -> dict | None:
        """The stored record, None when absent or when its value cannot be read or parsed (a corrupt
        value file): then logged and kept in ``unreadable`` with the reason, so export names it."""
        try:
            return parse(key, read_text(self.cache, key))
        except StoreError as err:
            self.unreadable[key] = str(err)
            logging.getLogger(__name__).warning("skipped %s", err)
            return None

    def has(self, key: str) -> bool:
        return f"result:{key}" in self.cache

    def _keys(self, prefix: str) -> list[str]:
        return stored_keys(self.cache, prefix, self.directory)

    def hashes(self) -> list[str]:
        return self._keys("result:")

    def __len__(self) -> int:
        return len(self.hashes())

    @property
    def version(self) -> int:
        return int(self.cache.get("version", 0))

    def table(self) -> pd.DataFrame:
        """One row per stored result (reads only the small row entries)."""
        rows = [json.loads(self.cache[k]) for k in self.cache.iterkeys()
                if isinstance(k, str) and k.startswith("row:")]
        return pd.DataFrame(rows)

    def records(self, keys: Iterable[str] | None = None) -> Iterable[dict]:
        """The stored records; one whose value cannot be read is skipped (see :meth:`get`)."""
        for key in keys if keys is not None else self.hashes():
            record = self.get(key)
            if record is not None:
                yield record

    def delete(self, hashes: Iterable[str]) -> list[str]:
        """Remove results and their rows in one transaction; each removal is kept as
        ``deleted:<hash>`` with its time. Returns the hashes that were stored."""
        removed = []
        refuse_writes(self.cache, self.directory, self.read_only)
        with self.cache.transact():
            for key in dict.fromkeys(hashes):
                had_result, had_row = self.cache.delete(f"result:{key}"), self.cache.delete(f"row:{key}")
                if had_result or had_row:
                    self.cache.set(f"deleted:{key}", json.dumps({"deleted": now_iso(), "hash": key}))
                    removed.append(key)
            if removed:
                self.cache.incr("version", default=0)
        return removed

    def deleted(self) -> set[str]:
        """Hashes removed with :meth:`delete` (and not stored again since)."""
        return {key for key in self._keys("deleted:") if not self.has(key)}

    def problems(self) -> dict[str, str]:
        """hash -> what is wrong, for every stored result that the schema rejects today."""
        found = {}
        for key in sorted(set(self.hashes()) | set(self._keys("row:"))):
            try:
                found[key] = stored_problem(key, read_text(self.cache, key), f"row:{key}" in self.cache)
            except StoreError as err:  # a corrupt value file: named, and the check goes on
                found[key] = str(err)
        return {key: problem for key, problem in found.items() if problem}

    def check(self) -> list[str]:
        """The hashes of stored results that fail the schema (see :meth:`problems` for why)."""
        return sorted(self.problems())

    # bundles -----------------------------------------------------------------------------
    def export_bundle(self, path: str | os.PathLike, keys: Iterable[str] | None = None, note: str = "",
                      drop_kshot_val: bool = False) -> Path:
        """A format-2 bundle (:mod:`lthvp.results.bundle_format`); ``drop_kshot_val`` leaves out the
        k-shot validation predictions (recomputable from prompt and mapping), said in the manifest."""
        keys = list(keys) if keys is not None else self.hashes()
        return write_atomically(path, lambda f: bundle_format.export(self, f, keys, note, drop_kshot_val))

    def import_bundle(self, path: str | os.PathLike) -> int:
        """Validate the whole bundle, then add the results the store lacks; returns how many."""
        return self.import_bundle_report(path).added_count

    def import_bundle_report(self, path: str | os.PathLike, skip: Iterable[str] = ()) -> "ImportReport":
        """Validate the whole bundle, then add the results the store lacks (and ``skip`` does not name)."""
        records = read_bundle(path)
        skip = set(skip)
        stored = {r.hash for r in records if r.hash in skip or self.has(r.hash)}
        new = [r for r in records if r.hash not in stored]
        try:
            self._write(new, importing=True)
        except store_budget.BudgetError as err:
            raise BundleError(str(err)) from None
        return ImportReport(added=[r.hash for r in new], skipped=[r.hash for r in records if r.hash in stored],
                            configs={r.hash: (r.stored_config(), r.metrics) for r in records})


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    configs: dict = field(default_factory=dict)  # hash -> (config, metrics) of every record in the bundle

    @property
    def added_count(self) -> int:
        return len(self.added)


def _check_member(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if name.startswith(("/", "\\")) or "\\" in name or ".." in Path(name).parts or ":" in name:
        raise BundleError(f"unsafe path in bundle: {name!r}")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BundleError(f"links are not allowed in bundles: {name!r}")
    if info.file_size > MAX_MEMBER_BYTES:
        raise BundleError(f"bundle member {name!r} is too large ({info.file_size} bytes > {MAX_MEMBER_BYTES})")


class _Reader:
    """Reads members as they really expand (sizes may lie), bounded; a corrupt member is a BundleError."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf, self.total = zf, 0

    def read(self, info: zipfile.ZipInfo) -> bytes:
        try:
            with self.zf.open(info) as f:
                data = f.read(MAX_MEMBER_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError) as err:
            raise BundleError(f"{info.filename}: corrupt zip member ({type(err).__name__}: {err})") from None
        if len(data) > MAX_MEMBER_BYTES:
            raise BundleError(f"bundle member {info.filename!r} expands beyond {MAX_MEMBER_BYTES} bytes")
        self.total += len(data)
        if self.total > MAX_EXPANDED_BYTES:
            raise BundleError(f"bundle expands beyond {MAX_EXPANDED_BYTES} bytes in total")
        try:
            store_budget.check_read(self.total)  # refused while reading: a bundle over budget is never held whole
        except store_budget.BudgetError as err:
            raise BundleError(str(err)) from None
        return data

    def json(self, info: zipfile.ZipInfo):
        data = self.read(info)
        try:
            return json.loads(data)
        except RecursionError:
            raise BundleError(f"{info.filename}: JSON nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError, bad UTF-8, over-long ints
            raise BundleError(f"malformed JSON in {info.filename}: {err}") from None


def read_bundle(path: str | os.PathLike) -> list[RunRecord]:
    """Parse and validate every member of a bundle; raises BundleError on the first problem."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no bundle file at {path}")
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError, EOFError) as err:
        raise BundleError(f"not a zip bundle: {err}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BundleError(f"bundle has too many members ({len(infos)})")
        if len({i.filename for i in infos}) != len(infos):
            raise BundleError("bundle has duplicate member names")
        for info in infos:
            _check_member(info)
        by_name = {i.filename: i for i in infos}
        if "manifest.json" not in by_name:
            raise BundleError("bundle has no manifest.json")
        reader = _Reader(zf)
        manifest = reader.json(by_name["manifest.json"])
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT \
                or manifest.get("version") not in (1, 2) or isinstance(manifest.get("version"), bool):
            raise BundleError(f"manifest.json: not an {BUNDLE_FORMAT} v1 or v2 manifest (a JSON object "
                              f"with format and version)")
        if manifest["version"] == 2:
            return _unique(bundle_format.read(zf, by_name, reader, manifest))
        records = []
        for info in infos:
            n = info.filename
            if n == "manifest.json" or n.endswith("/") or n.startswith("prompts/"):
                continue
            if not (n.startswith("results/") and n.endswith(".json") and n.count("/") == 1):
                raise BundleError(f"unexpected member in bundle: {n!r}")
            record = reader.json(info)
            prompt = record.pop("prompt", None) if isinstance(record, dict) else None
            if prompt is not None:  # the exported form: the PNG is its own member, re-encoded by the schema
                if "prompt_png" in record or prompt != f"prompts/{record.get('hash')}.png" or prompt not in by_name:
                    raise BundleError(f"{n}: field 'prompt': {str(prompt)[:80]!r} is not this result's PNG in the bundle")
                record["prompt_png"] = base64.b64encode(reader.read(by_name[prompt])).decode()
            try:
                records.append(RunRecord.from_json(record, n))
            except RecordError as err:
                raise BundleError(str(err)) from None
    return _unique(records)


def _unique(records: list[RunRecord]) -> list[RunRecord]:
    hashes = [r.hash for r in records]
    if len(hashes) != len(set(hashes)):
        raise BundleError("bundle lists a result twice")
    return records
