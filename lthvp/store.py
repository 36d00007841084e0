"""The public contract's import path: ``lthvp.store`` is :mod:`lthvp.results.store`."""

from lthvp.results.store import BundleError, ResultStore  # noqa: F401
