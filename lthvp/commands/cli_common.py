"""What every CLI command shares: the store it opens and its progress bars."""

from __future__ import annotations

import sys


def progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)


def open_store(args):
    """The store named by --store (or the default one); shipped bundles seed it when empty."""
    from lthvp.paths import default_store_dir
    from lthvp.results.seeding import open_seeded_store

    store, messages = open_seeded_store(args.store or default_store_dir())
    for m in messages:
        print(m, file=sys.stderr)
    return store


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    import argparse

    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)
