"""Bundle format 1 vs 2 on the same results: file size by member kind, and the time to import each
into an empty store (one run each). The format-1 bundle is only read; the format-2 one is written
to a temporary directory (with and without the k-shot validation predictions).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bundle_format.py [--bundle cache/mini_digits.zip]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from lthvp.results.store import ResultStore, read_bundle  # noqa: E402


def kinds(path: Path) -> dict[str, int]:
    """Compressed bytes by top-level member folder (results, records, arrays, prompts, manifest)."""
    out = collections.Counter()
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            out[info.filename.split("/")[0]] += info.compress_size
    return dict(out)


def timed_import(bundle: Path, directory: Path) -> tuple[str, ResultStore]:
    """"wall / CPU" seconds: on a shared machine the process's CPU time is the steadier number."""
    t0, c0 = time.perf_counter(), time.process_time()
    store = ResultStore(directory)
    store.import_bundle(bundle)
    return f"{time.perf_counter() - t0:.1f} / {time.process_time() - c0:.1f}", store


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, default=REPO / "cache" / "mini_digits.zip")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t_old, store = timed_import(args.bundle, tmp / "old")
        n = len(store)
        rows = [("format 1 (as shipped)", args.bundle, t_old, None)]
        for drop in (False, True):
            out = tmp / f"v2{'-drop' if drop else ''}.zip"
            t0 = time.perf_counter()
            store.export_bundle(out, drop_kshot_val=drop)
            t_export = time.perf_counter() - t0
            t_new, fresh = timed_import(out, tmp / f"new{drop}")
            if not drop:
                assert all(fresh.get(h) == store.get(h) for h in store.hashes()), "format 2 changed a record"
            rows.append((f"format 2{', k-shot val dropped' if drop else ''}", out, t_new, t_export))
        c0 = time.process_time()
        read_bundle(rows[1][1])
        t_read = time.process_time() - c0
        c0 = time.process_time()
        read_bundle(args.bundle)
        t_read_old = time.process_time() - c0
        print(f"{n} results")
        print("| bundle | MB | KB per run | import s (wall / CPU) | export s | by member kind (MB) |")
        print("|---|---|---|---|---|---|")
        for name, path, t_import, t_export in rows:
            size = path.stat().st_size
            parts = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in sorted(kinds(path).items()))
            print(f"| {name} | {size / 1e6:.2f} | {size / n / 1e3:.1f} | {t_import} | "
                  f"{'' if t_export is None else f'{t_export:.1f}'} | {parts} |")
        print(f"read_bundle alone (CPU s, no store write): format 1 {t_read_old:.1f}, format 2 {t_read:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
