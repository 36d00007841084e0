"""Carry a long sweep across machines: its store lives in an ignored folder that a fresh checkout
does not have, so the finished runs are committed as small, append-only bundle parts
(``sweeps/<name>/part_NNN.zip``, each run in exactly one part) and imported again on resume.

    python scripts/sweep_checkpoint.py save    --store S --parts sweeps/mini_v2  # new runs -> next part
    python scripts/sweep_checkpoint.py restore --store S --parts sweeps/mini_v2  # every part -> store

``save`` takes the results of the selected preset, dataset and families that no part holds yet;
``restore`` validates each part as any bundle is validated and adds what the store lacks.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path


from lthvp.analysis.pairing import selected_hashes  # noqa: E402
from lthvp.results.store import ResultStore  # noqa: E402


def saved_hashes(parts: Path) -> set[str]:
    """Every result hash a committed part already holds (read from the parts' manifests)."""
    hashes: set[str] = set()
    for part in sorted(parts.glob("part_*.zip")):
        with zipfile.ZipFile(part) as zf:
            hashes.update(json.loads(zf.read("manifest.json"))["results"])
    return hashes


def save(store: ResultStore, parts: Path, preset: str, dataset: str, families: list[str]) -> Path | None:
    new = sorted(set(selected_hashes(store.table(), preset, dataset, families)) - saved_hashes(parts))
    if not new:
        return None
    # after the highest number, so a gap (a part removed) never makes this overwrite a later part
    index = 1 + max((int(p.stem.removeprefix("part_")) for p in parts.glob("part_*.zip")), default=-1)
    path = parts / f"part_{index:03d}.zip"
    note = f"sweep checkpoint {index}: {len(new)} runs ({preset}, {dataset}, families {' '.join(families)})"
    return store.export_bundle(path, new, note=note)


def restore(store: ResultStore, parts: Path) -> tuple[int, int]:
    added = skipped = 0
    deleted = store.deleted()  # results a user deleted stay deleted, as when shipped bundles seed a store
    for part in sorted(parts.glob("part_*.zip")):
        report = store.import_bundle_report(part, skip=deleted)
        added, skipped = added + len(report.added), skipped + len(report.skipped)
    return added, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--parts", type=Path, required=True)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--family", nargs="+", default=["0", "1", "2"])
    args = parser.parse_args(argv)
    store = ResultStore(args.store)
    if args.action == "restore":
        added, skipped = restore(store, args.parts)
        print(f"restored {added} runs from {args.parts} ({skipped} already stored)")
        return 0
    args.parts.mkdir(parents=True, exist_ok=True)
    path = save(store, args.parts, args.preset, args.dataset, args.family)
    print(f"saved {path}" if path else "nothing new to save")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
