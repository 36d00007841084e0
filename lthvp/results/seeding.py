"""The shipped result bundles (``cache/*.zip``) reach every store through here: each entry point
(CLI, worker, app) opens its store with :func:`open_seeded_store`, which imports the shipped
bundles that store has not imported yet, so a shipped cell is served, never retrained. Each
shipped bundle is registered as a study (lthvp.results.studies) when it is imported."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from lthvp.results import bundle_format, studies
from lthvp.results.provenance import now_iso
from lthvp.results.store import BundleError, ResultStore, read_bundle


def _bundles(bundle_dir: Path | None) -> list[Path]:
    from lthvp.paths import shipped_bundle_dir

    return sorted(Path(bundle_dir or shipped_bundle_dir()).glob("*.zip"))


def result_count(path: Path) -> int | None:
    """How many results a bundle lists (None if unreadable): what a progress message announces
    before the import reads them (lthvp.results.bundle_format.listed_count, either format)."""
    return bundle_format.listed_count(path)


def pending(store: ResultStore, bundle_dir: Path | None = None) -> list[tuple[Path, int | None]]:
    """The shipped bundles this store has not imported (or not registered as a study) yet, each with
    its result count: the work :func:`seed_store` will do (a page announces it before it starts)."""
    out = []
    for path in _bundles(bundle_dir):
        digest = studies.file_digest(path)
        if f"seeded:{digest}" not in store.cache or studies.PREFIX + digest not in store.cache:
            out.append((path, result_count(path)))
    return out


def seed_store(store: ResultStore, bundle_dir: Path | None = None,
               progress: Callable[[str], None] | None = None) -> list[str]:
    """Import every shipped ``cache/*.zip`` bundle this store has not imported yet (known by its
    content digest), so a store seeded from an older release picks up a newer shipped study.
    Results the store holds are kept; results a user deleted stay deleted. Returns what happened;
    ``progress`` hears each step before it starts."""
    messages = []
    for path in _bundles(bundle_dir):
        digest = studies.file_digest(path)
        if f"seeded:{digest}" in store.cache:
            if studies.PREFIX + digest not in store.cache:  # seeded by a release without studies: register once
                _register_old(store, path, digest, progress)
            continue
        if progress:
            n = result_count(path)
            progress(f"Importing {'' if n is None else f'{n:,} '}shipped results from {path.name}…")
        try:
            report = store.import_bundle_report(path, skip=store.deleted())
        except BundleError as err:
            messages.append(f"could not import {path.name}: {err}")
            continue
        studies.register(store, path.name, digest, report.configs or report.added + report.skipped, "shipped",
                         report.configs)
        store.cache.set(f"seeded:{digest}", json.dumps({"bundle": path.name, "imported": now_iso(),
                                                        "added": len(report.added)}))
        messages.append(f"imported {path.name}: {len(report.added)} results added, "
                        f"{len(report.skipped)} already stored or deleted here")
    return messages


def _register_old(store: ResultStore, path: Path, digest: str, progress) -> None:
    if progress:
        progress(f"Recording the design of the shipped study {path.name}…")
    try:
        records = read_bundle(path)
    except BundleError:
        return  # imported once, unreadable now: nothing to describe
    studies.register(store, path.name, digest, [r.hash for r in records], "shipped",
                     {r.hash: r.stored_config() for r in records})


def added_count(message: str) -> int:
    """The number of results a :func:`seed_store` message says were added (0 for other messages)."""
    head = message.split(": ", 1)[-1] if message.startswith("imported ") else ""
    word = head.split(" results added", 1)[0] if " results added" in head else "0"
    return int(word) if word.isdigit() else 0


def open_seeded_store(directory: str | os.PathLike,
                      progress: Callable[[str], None] | None = None) -> tuple[ResultStore, list[str]]:
    """Open a store the way every entry point (CLI, worker, app) does: seeded from the shipped
    bundles it has not imported yet, so a shipped cell is served, never retrained."""
    store = ResultStore(directory)
    return store, seed_store(store, progress=progress)
