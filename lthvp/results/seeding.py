"""The shipped result bundles (``cache/*.zip``) reach every store through here: each entry point
(CLI, worker, app) opens its store with :func:`open_seeded_store`, which imports the shipped
bundles that store has not imported yet, so a shipped cell is served, never retrained."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from lthvp.results.provenance import now_iso
from lthvp.results.store import BundleError, ResultStore


def seed_store(store: ResultStore, bundle_dir: Path | None = None) -> list[str]:
    """Import every shipped ``cache/*.zip`` bundle this store has not imported yet (known by its
    content digest), so a store seeded from an older release picks up a newer shipped study.
    Results the store holds are kept; results a user deleted stay deleted. Returns what happened."""
    from lthvp.paths import shipped_bundle_dir

    messages = []
    for path in sorted(Path(bundle_dir or shipped_bundle_dir()).glob("*.zip")):
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if f"seeded:{digest}" in store.cache:
            continue
        try:
            report = store.import_bundle_report(path, skip=store.deleted())
        except BundleError as err:
            messages.append(f"could not import {path.name}: {err}")
            continue
        store.cache.set(f"seeded:{digest}", json.dumps({"bundle": path.name, "imported": now_iso(),
                                                        "added": len(report.added)}))
        messages.append(f"imported {path.name}: {len(report.added)} results added, "
                        f"{len(report.skipped)} already stored or deleted here")
    return messages


def open_seeded_store(directory: str | os.PathLike) -> tuple[ResultStore, list[str]]:
    """Open a store the way every entry point (CLI, worker, app) does: seeded from the shipped
    bundles it has not imported yet, so a shipped cell is served, never retrained."""
    store = ResultStore(directory)
    return store, seed_store(store)
