"""The stored result, typed: ``RunRecord`` (fields in :mod:`lthvp.results.record_fields`).

The runner builds one, the store writes one (``ResultStore.put``), a bundle reads as a list of
them (``read_bundle``). ``to_json`` gives the plain-JSON dict that crosses process boundaries
(Dask workers, bundle members, the store's values); ``from_json`` validates such a dict with
:mod:`lthvp.results.record_schema` (types, ranges, sizes), so a RunRecord read from anywhere is a
valid one. ``config`` is a :class:`RunConfig`. Importable without torch (the pages use it).
"""

from __future__ import annotations

from lthvp.results.record_fields import FIELDS, OPTIONAL, REQUIRED, RecordFields  # noqa: F401 (re-exported)
from lthvp.results.record_schema import validate_record


class RunRecord(RecordFields):
    """One stored result, read through the schema (:meth:`from_json`)."""

    @classmethod
    def from_json(cls, data: dict, name: str | None = None) -> "RunRecord":
        clean = validate_record(data, name)
        return cls(**{k: clean.get(k) for k in FIELDS})
