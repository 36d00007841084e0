"""Every default location in one place (each overridable by an environment variable)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TICKETS_DIR = REPO_ROOT / "tickets"
BUNDLE_DIR = REPO_ROOT / "cache"  # shipped result bundles (*.zip), imported into every store once


def shipped_bundle_dir() -> Path:
    """Where the shipped bundles that seed every store live: $LTHVP_BUNDLES, else cache/."""
    return Path(os.environ.get("LTHVP_BUNDLES", BUNDLE_DIR))


def default_store_dir() -> Path:
    """The shared results store: $LTHVP_STORE, else cache/store."""
    return Path(os.environ.get("LTHVP_STORE", REPO_ROOT / "cache" / "store"))


def feature_dir() -> Path:
    """The LP feature cache: $LTHVP_FEATURES, else cache/features."""
    return Path(os.environ.get("LTHVP_FEATURES", REPO_ROOT / "cache" / "features"))
