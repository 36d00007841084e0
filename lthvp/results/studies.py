"""Studies: a study is an imported bundle (shipped, uploaded or imported on the command line) with
its design (datasets, methods, arms, families, levels, shots, seeds, protocol, code versions),
derived from its records. The registry lives in the store (one ``study:<sha256>`` entry per
bundle), so pages can show a study's planned runs apart from runs added later, and it is
validated on read: a damaged entry is named and ignored, never trusted."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lthvp.results import shots
from lthvp.results.provenance import now_iso
from lthvp.results.safe_files import printable

PREFIX = "study:"
SOURCES = ("shipped", "upload", "cli")
# the fields that make a training protocol (as lthvp.analysis.replication.PROTOCOL; a test keeps them equal)
PROTOCOL = ("preset", "epochs", "steps", "lr", "batch_size", "image_size", "mapping", "assignment", "lp_input",
            "precision", "val_per_class")
_HASH = re.compile(r"[0-9a-f]{16}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class StudyError(ValueError):
    """A registry entry that is not a valid study (the message says which field and why)."""


def family_key(value) -> str:
    """A record's family as text: the source seed, or 'legacy' (lthvp.analysis.pairing's keys)."""
    return "legacy" if value is None else str(int(value))


shots_key = shots.sort_key  # numeric, 'full' last (lthvp.results.shots)


@dataclass(frozen=True)
class Design:
    """What a study holds: every factor's values, the protocol per (method, shots), and the code
    versions (provenance git commits, with run counts) that produced its runs."""
    runs: int
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    arms: tuple[str, ...]
    families: tuple[str, ...]
    levels: tuple[int, ...]
    shots: tuple[str, ...]
    seeds: tuple[int, ...]
    protocols: tuple[tuple[str, str, str, int], ...]  # (method, shots, "epochs=60, lr=0.01, ...", runs)
    code_versions: tuple[tuple[str, int], ...]  # (git commit or "unknown", runs), most runs first

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc) -> "Design":
        if not isinstance(doc, dict) or set(doc) != {f.name for f in dataclasses.fields(cls)}:
            raise StudyError("design: not an object with exactly the design's fields")
        runs = doc["runs"]
        if not isinstance(runs, int) or isinstance(runs, bool) or runs < 0:
            raise StudyError("design.runs: not a non-negative integer")
        out = {"runs": runs}
        for name, kind in (("datasets", str), ("methods", str), ("arms", str), ("families", str), ("levels", int),
                           ("shots", str), ("seeds", int)):
            values = doc[name]
            if not isinstance(values, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
                raise StudyError(f"design.{name}: not a list of {kind.__name__}")
            out[name] = tuple(values)
        out["protocols"] = tuple(_rows(doc["protocols"], "design.protocols", (str, str, str, int)))
        out["code_versions"] = tuple(_rows(doc["code_versions"], "design.code_versions", (str, int)))
        return cls(**out)


def _rows(values, where: str, kinds: tuple) -> list[tuple]:
    if not isinstance(values, list):
        raise StudyError(f"{where}: not a list")
    rows = []
    for row in values:
        if not (isinstance(row, list) and len(row) == len(kinds)
                and all(isinstance(v, k) and not isinstance(v, bool) for v, k in zip(row, kinds))):
            raise StudyError(f"{where}: a row is not [{', '.join(k.__name__ for k in kinds)}]")
        rows.append(tuple(row))
    return rows


@dataclass(frozen=True)
class Study:
    """One imported bundle: its file name, content digest, where it came from, when it was first
    imported, the hashes of its runs (its planned runs) and its design."""
    name: str
    digest: str
    source: str
    imported: str
    members: tuple[str, ...]
    design: Design

    @property
    def label(self) -> str:
        return f"{self.name} ({self.design.runs:,} runs, {self.source}, {self.imported[:10]})"

    def to_json(self) -> dict:
        return {"name": self.name, "digest": self.digest, "source": self.source, "imported": self.imported,
                "members": list(self.members), "design": self.design.to_json()}

    @classmethod
    def from_json(cls, doc) -> "Study":
        if not isinstance(doc, dict) or set(doc) != {"name", "digest", "source", "imported", "members", "design"}:
            raise StudyError("not an object with exactly name, digest, source, imported, members, design")
        name, digest, source, imported, members = (doc[k] for k in ("name", "digest", "source", "imported", "members"))
        if not isinstance(name, str) or not 0 < len(name) <= 200 or printable(name) != name:
            raise StudyError("name: not a printable text of 1-200 characters")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise StudyError("digest: not a sha256 hex digest")
        if source not in SOURCES:
            raise StudyError(f"source: not one of {', '.join(SOURCES)}")
        if not isinstance(imported, str) or not 0 < len(imported) <= 40:
            raise StudyError("imported: not a time stamp")
        if not isinstance(members, list) or not all(isinstance(h, str) and _HASH.fullmatch(h) for h in members):
            raise StudyError("members: not a list of result hashes")
        if len(set(members)) != len(members):
            raise StudyError("members: a hash is listed twice")
        design = Design.from_json(doc["design"])
        if design.runs != len(members):
            raise StudyError(f"design.runs: {design.runs} but {len(members)} members")
        return cls(name, digest, source, imported, tuple(members), design)


def file_digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def derive_design(records: Iterable[dict]) -> Design:
    """The design of a set of records (dicts with ``config`` and, where known, ``provenance``)."""
    configs, commits = [], Counter()
    for record in records:
        configs.append(record["config"])
        commits[((record.get("provenance") or {}).get("git_commit")) or "unknown"] += 1

    def values(field, key=None):
        return tuple(sorted({c.get(field) for c in configs if c.get(field) is not None}, key=key))

    protocols = Counter()
    for c in configs:
        text = ", ".join(f"{k}={c.get(k)}" for k in PROTOCOL if c.get(k) is not None)
        protocols[(str(c.get("method")), shots.text(c.get("shots")), text)] += 1
    return Design(
        runs=len(configs), datasets=values("dataset"), methods=values("method"), arms=values("arm"),
        families=tuple(sorted({family_key(c.get("family")) for c in configs},
                              key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0))),
        levels=tuple(int(v) for v in values("level")),
        shots=tuple(sorted({shots.text(c.get("shots")) for c in configs}, key=shots_key)),
        seeds=tuple(int(v) for v in values("seed")),
        protocols=tuple((m, s, p, n) for (m, s, p), n in sorted(protocols.items(), key=lambda kv: (
            kv[0][0], shots_key(kv[0][1]), -kv[1]))),
        code_versions=tuple(sorted(commits.items(), key=lambda kv: (-kv[1], kv[0]))))


def register(store, name: str, digest: str, hashes: Iterable[str], source: str,
             configs: dict | None = None) -> Study:
    """Record a bundle as a study (its first import is kept: the same digest again changes
    nothing). The design is read from the stored records; a member the store does not hold (a
    user deleted it) contributes its config from ``configs`` (hash -> config or (config, metrics))."""
    key = PREFIX + digest
    existing = store.cache.get(key)
    if existing is not None:
        try:
            return Study.from_json(json.loads(existing))
        except (ValueError, StudyError):
            pass  # a damaged entry is replaced by a valid one
    members, records = [], []
    for h in dict.fromkeys(hashes):
        record = store.get(h)
        if record is None and configs and h in configs:
            config = configs[h]
            record = {"config": config[0] if isinstance(config, tuple) else config}
        if record is not None:  # a member known neither here nor in the report cannot be described
            members.append(h)
            records.append(record)
    study = Study(printable(Path(name).name)[:200] or "bundle", digest, source, now_iso(), tuple(members),
                  derive_design(records))
    store.cache.set(key, json.dumps(study.to_json()))
    return study


def register_import(store, path: str | os.PathLike, report, source: str, name: str | None = None) -> Study:
    """A study from an import's report (lthvp.results.store.ImportReport: every record of the bundle)."""
    hashes = list(report.configs) or list(report.added) + list(report.skipped)
    return register(store, name or Path(path).name, file_digest(path), hashes, source, report.configs)


def studies(store) -> tuple[list[Study], list[str]]:
    """Every valid registry entry (oldest import first) and one line per entry that is not."""
    found, problems = [], []
    for key in sorted(k for k in store.cache.iterkeys() if isinstance(k, str) and k.startswith(PREFIX)):
        try:
            study = Study.from_json(json.loads(store.cache.get(key)))
            if PREFIX + study.digest != key:
                raise StudyError("digest: differs from the entry's key")
            found.append(study)
        except (ValueError, TypeError, RecursionError) as err:  # StudyError, JSONDecodeError, bad text
            problems.append(f"study entry {printable(key[len(PREFIX):])[:16]}: {printable(str(err))[:200]}; ignored")
    return sorted(found, key=lambda s: (s.imported, s.name)), problems


def default_study(found: list[Study]) -> Study | None:
    """The study pages open on: the latest shipped study, else the latest imported one."""
    shipped = [s for s in found if s.source == "shipped"]
    return (shipped or found)[-1] if found else None
