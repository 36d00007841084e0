"""Results store (diskcache, no eviction) and result bundles (zip of plain data).

Values are JSON strings, so the store never unpickles anything. Each result is kept twice:
the full record under ``result:<hash>`` and a small flat row under ``row:<hash>`` so pages can
build their tables without reading prompts, curves and bin tables. ``version`` increments on
every write; readers cache on it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import diskcache
import pandas as pd

from lthvp.config import RunConfig
from lthvp.provenance import now_iso, provenance

BUNDLE_FORMAT = "lthvp-bundle"
BUNDLE_VERSION = 1
MAX_MEMBER_BYTES = 8 * 1024 * 1024
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 200_000
MAX_PROMPT_PIXELS = 1024 * 1024
REQUIRED = {"hash": str, "config": dict, "metrics": dict, "reliability": dict, "remaining_fraction": (int, float)}
METRICS = ("accuracy", "ece", "mce", "nll", "brier")


class BundleError(ValueError):
    """An invalid bundle; importing it changed nothing."""


def flat_row(record: dict) -> dict:
    """The tabular view of one result: config fields, metrics, sparsity, timing."""
    scaled = record.get("scaled") or {}
    row = {"hash": record["hash"], "family": None, "steps": None, "val_per_class": None, **record["config"],
           **{k: record["metrics"][k] for k in METRICS},
           **{f"ts_{k}": scaled.get(k) for k in ("ece", "mce", "nll", "brier")},
           "temperature": scaled.get("temperature"), "prompt_shift": record.get("prompt_shift"),
           "remaining_fraction": record["remaining_fraction"], "best_epoch": record.get("best_epoch"),
           "seconds": (record.get("timings") or {}).get("total_seconds"),
           "created": (record.get("provenance") or {}).get("created")}
    row["shots"] = str(row["shots"])
    return row


class ResultStore:
    def __init__(self, directory: str | os.PathLike):
        if not str(directory).strip():
            raise ValueError("the store path is empty; name a directory (e.g. --store cache/store)")
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"the store path {self.directory} is a file, not a directory")
        if not self.directory.exists():  # only what the store creates is made private (0700)
            self.directory.mkdir(parents=True, mode=0o700)
        self.cache = diskcache.Cache(str(self.directory), eviction_policy="none", size_limit=2 ** 62)

    # results -----------------------------------------------------------------------------
    def put(self, record: dict) -> None:
        """Write one finished result (record + row + version bump) in one transaction."""
        text = json.dumps(record, allow_nan=False)
        row = json.dumps(flat_row(record), allow_nan=False)
        with self.cache.transact():
            self.cache.set(f"result:{record['hash']}", text)
            self.cache.set(f"row:{record['hash']}", row)
            self.cache.incr("version", default=0)

    def get(self, key: str) -> dict | None:
        text = self.cache.get(f"result:{key}")
        return json.loads(text) if text is not None else None

    def has(self, key: str) -> bool:
        return f"result:{key}" in self.cache

    def hashes(self) -> list[str]:
        return sorted(k[len("result:"):] for k in self.cache.iterkeys() if isinstance(k, str) and k.startswith("result:"))

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
        for key in keys if keys is not None else self.hashes():
            record = self.get(key)
            if record is not None:
                yield record

    # bundles -----------------------------------------------------------------------------
    def export_bundle(self, path: str | os.PathLike, keys: Iterable[str] | None = None, note: str = "") -> Path:
        """Zip: manifest.json, results/<hash>.json, prompts/<hash>.png (VP runs)."""
        path = Path(path)
        keys = list(keys) if keys is not None else self.hashes()
        tmp = path.with_suffix(path.suffix + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = []
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for record in self.records(keys):
                record = dict(record)
                record.pop("cached", None)
                png = record.pop("prompt_png", None)
                if png:
                    record["prompt"] = f"prompts/{record['hash']}.png"
                    zf.writestr(record["prompt"], base64.b64decode(png))
                zf.writestr(f"results/{record['hash']}.json", json.dumps(record, allow_nan=False, sort_keys=True))
                entries.append(record["hash"])
            manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "count": len(entries),
                        "results": entries, "exported": now_iso(), "note": note, "provenance": provenance()}
            zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, path)
        return path

    def import_bundle(self, path: str | os.PathLike) -> int:
        """Validate the whole bundle, then add the results the store lacks; returns how many."""
        return self.import_bundle_report(path).added_count

    def import_bundle_report(self, path: str | os.PathLike) -> "ImportReport":
        records = read_bundle(path)
        report = ImportReport()
        new = []
        for record in records:
            (report.skipped if self.has(record["hash"]) else report.added).append(record["hash"])
            if not self.has(record["hash"]):
                new.append(record)
        with self.cache.transact():
            for record in new:
                self.cache.set(f"result:{record['hash']}", json.dumps(record, allow_nan=False))
                self.cache.set(f"row:{record['hash']}", json.dumps(flat_row(record), allow_nan=False))
            if new:
                self.cache.incr("version", default=0)
        return report


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def added_count(self) -> int:
        return len(self.added)


def seed_store(store: ResultStore, bundle_dir: Path | None = None) -> list[str]:
    """An empty store imports every shipped ``cache/*.zip`` bundle; returns what happened."""
    from lthvp.paths import BUNDLE_DIR

    if len(store.hashes()) > 0:
        return []
    messages = []
    for path in sorted(Path(bundle_dir or BUNDLE_DIR).glob("*.zip")):
        try:
            report = store.import_bundle_report(path)
            messages.append(f"imported {path.name}: {len(report.added)} results added, "
                            f"{len(report.skipped)} already stored")
        except BundleError as err:
            messages.append(f"could not import {path.name}: {err}")
    return messages


def open_seeded_store(directory: str | os.PathLike) -> tuple[ResultStore, list[str]]:
    """Open a store the way every entry point (CLI, worker, app) does: seeded from the shipped
    bundles on first use, so a shipped cell is served, never retrained."""
    store = ResultStore(directory)
    return store, seed_store(store)


def _check_member(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if name.startswith(("/", "\\")) or "\\" in name or ".." in Path(name).parts or ":" in name:
        raise BundleError(f"unsafe path in bundle: {name!r}")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BundleError(f"links are not allowed in bundles: {name!r}")
    if info.file_size > MAX_MEMBER_BYTES:
        raise BundleError(f"bundle member {name!r} is too large ({info.file_size} bytes > {MAX_MEMBER_BYTES})")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with zf.open(info) as f:  # read at most the limit: the declared size may lie (zip bombs)
        data = f.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise BundleError(f"bundle member {info.filename!r} expands beyond {MAX_MEMBER_BYTES} bytes")
    return data


def _validate_png(data: bytes, name: str) -> str:
    from PIL import Image

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise BundleError(f"{name} is not a PNG file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PROMPT_PIXELS:
                raise BundleError(f"{name} is too large ({img.width}x{img.height})")
            img.verify()
    except BundleError:
        raise
    except Exception as err:
        raise BundleError(f"{name} is not a valid PNG: {err}") from None
    return base64.b64encode(data).decode()


def validate_record(record, name: str) -> dict:
    if not isinstance(record, dict):
        raise BundleError(f"{name}: a result must be a JSON object")
    for key, kind in REQUIRED.items():
        if not isinstance(record.get(key), kind):
            raise BundleError(f"{name}: field {key!r} is missing or has the wrong type")
    try:
        cfg = RunConfig.from_dict(record["config"])
    except (TypeError, ValueError) as err:
        raise BundleError(f"{name}: invalid config: {err}") from None
    if cfg.hash() != record["hash"]:
        raise BundleError(f"{name}: hash {record['hash']!r} does not match its config ({cfg.hash()})")
    for m in METRICS:
        value = record["metrics"].get(m)
        if not isinstance(value, (int, float)) or value != value:
            raise BundleError(f"{name}: metric {m!r} is missing or not a number")
    table = record["reliability"]
    cols = ("bin_lower", "bin_upper", "count", "accuracy", "confidence")
    if not all(isinstance(table.get(c), list) for c in cols) or len({len(table[c]) for c in cols}) != 1:
        raise BundleError(f"{name}: reliability table malformed")
    if not 0.0 <= float(record["remaining_fraction"]) <= 1.0:
        raise BundleError(f"{name}: remaining_fraction outside [0, 1]")
    return record


def read_bundle(path: str | os.PathLike) -> list[dict]:
    """Parse and validate every member of a bundle; raises BundleError on the first problem."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no bundle file at {path}")
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise BundleError(f"not a zip bundle: {err}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BundleError(f"bundle has too many members ({len(infos)})")
        names = [i.filename for i in infos]
        if len(names) != len(set(names)):
            raise BundleError("bundle has duplicate member names")
        for info in infos:
            _check_member(info)
        by_name = {i.filename: i for i in infos}
        if "manifest.json" not in by_name:
            raise BundleError("bundle has no manifest.json")
        try:
            manifest = json.loads(_read_member(zf, by_name["manifest.json"]))
            if manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != BUNDLE_VERSION:
                raise BundleError(f"not an {BUNDLE_FORMAT} v{BUNDLE_VERSION} bundle")
            records = []
            for info in infos:
                n = info.filename
                if n == "manifest.json" or n.endswith("/") or n.startswith("prompts/"):
                    continue
                if not (n.startswith("results/") and n.endswith(".json") and n.count("/") == 1):
                    raise BundleError(f"unexpected member in bundle: {n!r}")
                record = validate_record(json.loads(_read_member(zf, info)), n)
                prompt = record.pop("prompt", None)
                if prompt is not None:
                    if prompt != f"prompts/{record['hash']}.png" or prompt not in by_name:
                        raise BundleError(f"{n}: prompt {prompt!r} missing from the bundle")
                    record["prompt_png"] = _validate_png(_read_member(zf, by_name[prompt]), prompt)
                record.pop("cached", None)
                records.append(record)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BundleError(f"malformed JSON in bundle: {err}") from None
        except zipfile.BadZipFile as err:
            raise BundleError(f"corrupt bundle: {err}") from None
    hashes = [r["hash"] for r in records]
    if len(hashes) != len(set(hashes)):
        raise BundleError("bundle lists a result twice")
    return records
