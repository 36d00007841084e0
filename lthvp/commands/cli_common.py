"""What every CLI command shares: the store it opens and its progress bars."""

from __future__ import annotations

import sys
from pathlib import Path


def progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)


def store_path(text: str) -> Path | str:
    """argparse type of --store: a Path, or the empty text itself, which the store refuses in one
    line (``Path("")`` is ".", so ``--store ''`` once opened a store in the current folder)."""
    return Path(text) if text.strip() else ""


def every_store_arg(parser) -> None:
    """Give every --store of ``parser`` and its subcommands the :func:`store_path` type, so that
    ``main`` can refuse an empty one for every command in one place."""
    import argparse

    for action in parser._actions:
        if "--store" in action.option_strings:
            action.type = store_path
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                every_store_arg(child)


def open_store(args):
    """The store named by --store (or the default one); shipped bundles seed it when empty."""
    from lthvp.paths import default_store_dir
    from lthvp.results.seeding import open_seeded_store

    store, messages = open_seeded_store(args.store if args.store is not None else default_store_dir())
    for m in messages:
        print(m, file=sys.stderr)
    return store


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    import argparse

    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)
