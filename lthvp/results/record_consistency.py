"""Whole-record consistency: the parts of a result must describe the same run.

``record_schema`` checks every field on its own (type, range, size); a record can pass that and
still be unusable as a whole: 3 class names and a mapping of 10, prediction rows that are not the
test split, mapping-history rows of different lengths, a curve row without its epoch, a preset no
code knows. Pages index one part by another, so such a record broke them for everyone sharing the
store. :func:`check_consistency` runs after the field checks (types are known to be right) and
raises :class:`Bad` naming the field that disagrees and what it disagrees with.
"""

from __future__ import annotations

from lthvp.results.config import RunConfig
from lthvp.results.presets import PRESETS, check_bounds

EDGE_TOLERANCE = 1e-6  # bin edges and a bin's mean confidence, as floats written by metrics.reliability_table


class Bad(Exception):
    """(field path, message): the schema turns it into a RecordError naming the record."""


def _config(config: dict) -> int | None:
    """Check the preset-dependent bounds; the preset's number of source classes (None if unknown)."""
    if config.get("preset") not in PRESETS:
        raise Bad("config.preset", f"unknown preset {config.get('preset')!r}; known: {', '.join(sorted(PRESETS))}")
    try:
        preset = check_bounds(RunConfig.from_dict(config))
    except ValueError as err:
        raise Bad("config.image_size" if "image_size" in str(err) else "config", str(err)) from None
    return preset.source_classes


def _class_count(record: dict) -> int | None:
    """The number of target classes (None if no field implies one): the first field that implies
    one sets it, and every other field that implies one must agree."""
    predictions = record.get("predictions") or {}
    claims = [("classes", len(record["classes"]) if record.get("classes") else None),
              ("per_class_accuracy", None if record.get("per_class_accuracy") is None
               else len(record["per_class_accuracy"])),
              ("predictions.test", (predictions.get("test") or {}).get("shape", [None, None])[1]),
              ("predictions.val", (predictions.get("val") or {}).get("shape", [None, None])[1]),
              ("mapping", len(record["mapping"]) if record.get("mapping") else None)]
    known = [(field, n) for field, n in claims if n is not None]
    if not known:
        return None
    first, k = known[0]
    for field, n in known[1:]:
        if n != k:
            what = "columns" if field.startswith("predictions") else "entries"
            raise Bad(field, f"has {n} {what}, but {first} says the record has {k} target classes")
    return k


def _mapping(record: dict, k: int | None, n_source: int | None) -> None:
    """Mapping-history rows as long as the mapping (one source class per target class); every
    entry a source class of the preset's model."""
    mapping = record.get("mapping") or []
    history = record.get("mapping_history") or []
    width = len(mapping) if mapping else (k if k is not None else len(history[0]) if history else 0)
    for i, row in enumerate(history):
        if len(row) != width:
            raise Bad(f"mapping_history[{i}]", f"has {len(row)} entries, but the record has {width} target classes")
    if n_source is None:
        return
    for path, row in [("mapping", mapping)] + [(f"mapping_history[{i}]", r) for i, r in enumerate(history)]:
        for j, s in enumerate(row):
            if not -1 <= s < n_source:  # -1: a target class left unassigned (more targets than sources)
                raise Bad(f"{path}[{j}]", f"must be a source class in [-1, {n_source - 1}], got {s}")


def _curves(record: dict) -> None:
    for i, row in enumerate(record.get("curves") or []):
        epoch = row.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise Bad(f"curves[{i}].epoch", f"every curve row needs an integer epoch >= 0, got {epoch!r}")


def _reliability(rel: dict) -> int:
    """Bins ascending and not overlapping, values present exactly where a bin holds samples, a
    bin's mean confidence inside the bin; returns the number of binned samples."""
    lower, upper, count = rel["bin_lower"], rel["bin_upper"], rel["count"]
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        if not lo < hi:
            raise Bad(f"reliability.bin_upper[{i}]", f"must be above its lower edge {lo!r}, got {hi!r}")
        if i and lo < upper[i - 1] - EDGE_TOLERANCE:
            raise Bad(f"reliability.bin_lower[{i}]", f"bins must ascend without overlap: {lo!r} is below the "
                                                     f"previous bin's upper edge {upper[i - 1]!r}")
    for col in ("accuracy", "confidence"):
        for i, (value, n) in enumerate(zip(rel[col], count)):
            if (value is None) != (n == 0):
                raise Bad(f"reliability.{col}[{i}]", f"must be null exactly when the bin is empty (count {n}), "
                                                     f"got {value!r}")
    for i, conf in enumerate(rel["confidence"]):
        if conf is not None and not lower[i] - EDGE_TOLERANCE <= conf <= upper[i] + EDGE_TOLERANCE:
            raise Bad(f"reliability.confidence[{i}]", f"{conf!r} lies outside its bin [{lower[i]!r}, {upper[i]!r}]")
    return sum(count)


def _split_sizes(record: dict, k: int | None, binned: int) -> None:
    """Prediction rows are the test and validation splits; labels fit the classes."""
    predictions = record.get("predictions") or {}
    n_test, n_val = record.get("n_test"), record.get("n_val")
    has_bins = bool(record["reliability"]["count"])
    if n_test is not None and has_bins and binned != n_test:
        raise Bad("reliability.count", f"bins hold {binned} test samples, but n_test is {n_test}")
    test = predictions.get("test")
    if test is not None:
        rows = test["shape"][0]
        if n_test is not None and rows != n_test:
            raise Bad("predictions.test", f"has {rows} rows, but n_test is {n_test}")
        if has_bins and rows != binned:
            raise Bad("predictions.test", f"has {rows} rows, but the reliability bins hold {binned} samples")
    val, labels = predictions.get("val"), predictions.get("val_labels")
    if val is not None and n_val is not None and val["shape"][0] != n_val:
        raise Bad("predictions.val", f"has {val['shape'][0]} rows, but n_val is {n_val}")
    if labels is not None:
        expected = n_val if n_val is not None else (val["shape"][0] if val is not None else None)
        if expected is not None and len(labels) != expected:
            raise Bad("predictions.val_labels", f"has {len(labels)} labels for {expected} validation samples")
        if k is not None:
            for i, label in enumerate(labels):
                if label >= k:
                    raise Bad(f"predictions.val_labels[{i}]", f"must be a class in [0, {k - 1}], got {label}")


def check_consistency(record: dict) -> None:
    """Raise :class:`Bad` unless the record's parts agree (see the module docstring)."""
    n_source = _config(record["config"])
    k = _class_count(record)
    _mapping(record, k, n_source)
    _curves(record)
    binned = _reliability(record["reliability"])
    _split_sizes(record, k, binned)
