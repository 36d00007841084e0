"""The one schema of a stored result, checked at bundle import and at ``ResultStore.put``.

``validate_record`` returns a clean copy (the prompt PNG decoded under a pixel limit and
re-encoded, never kept as received) or raises :class:`RecordError` naming the record and the
field. Known fields only; values typed, finite, in range; lists bounded; the config re-validated by
:class:`RunConfig`, its hash recomputed; then the whole record (:mod:`record_consistency`). Older
records (no scaled/predictions/steps) still pass.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import struct

from lthvp.results import shots
from lthvp.results.config import RunConfig
from lthvp.results.record_fields import FIELDS, OPTIONAL, REQUIRED  # noqa: F401 (re-exported)
from lthvp.results.record_consistency import Bad as _Bad, check_consistency  # (field, message); the whole record
from lthvp.results.predictions import MAX_PREDICTION_VALUES, PredictionError, decode_probs

METRICS = ("accuracy", "ece", "mce", "nll", "brier")
RELIABILITY = ("bin_lower", "bin_upper", "count", "accuracy", "confidence")
SCALED_REQUIRED = ("temperature",) + METRICS
SCALED_OPTIONAL = ("val_nll_before", "val_nll_after")
# the fields: RunRecord's dataclass fields (REQUIRED: those without a default)
RUNTIME = ("cached",)  # flags of a returned result: dropped, never stored

MAX_RECORD_BYTES = 2 * 1024 * 1024  # the record's JSON apart from its prediction arrays
MAX_ROWS = 10_000  # curves, mapping_history
MAX_LIST = 100_000  # classes, per-class accuracy, mapping, one mapping_history row
MAX_BINS = 1_000  # reliability bins
MAX_KEYS = 64  # sparsity, timings, one curves row
MAX_STR = 4_096  # any string (the prompt and prediction payloads have their own limits)
MAX_NAME = 256  # class names, keys
MAX_PROMPT_SIDE = 512  # prompt PNG width and height, pixels
MAX_COUNT = 10 ** 9  # n_test, n_train, n_val, best_epoch, steps
RANGES = {"accuracy": (0.0, 1.0), "ece": (0.0, 1.0), "mce": (0.0, 1.0), "brier": (0.0, 2.0), "nll": (0.0, 1e4),
          "val_nll_before": (0.0, math.inf), "val_nll_after": (0.0, math.inf), "temperature": (0.0, math.inf)}
# scaled: a fitted T can run to ~0 (validation all correct) and its unclamped val NLL far up: finite is enough
HASH = re.compile(r"[0-9a-f]{16}")
# base64 of the largest array decode_probs accepts (float16 = 2 bytes per value)
MAX_PREDICTION_CHARS = 4 * (2 * MAX_PREDICTION_VALUES + 2) // 3 + 4


class RecordError(ValueError):
    """A result record that does not fit the schema; nothing was stored."""


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(v, path, lo=-math.inf, hi=math.inf, integer=False, none=False):
    if v is None and none:
        return
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
        raise _Bad(path, f"must be {'an integer' if integer else 'a number'}, got {type(v).__name__}")
    if isinstance(v, float) and not math.isfinite(v):
        raise _Bad(path, f"must be finite, got {v!r}")
    if not lo <= v <= hi:
        raise _Bad(path, f"must be in [{lo:g}, {hi:g}], got {_show(v)}")


def _string(v, path, limit=MAX_STR, none=False):
    if not (isinstance(v, str) or (v is None and none)):
        raise _Bad(path, f"must be a string, got {type(v).__name__}")
    if v is not None and len(v) > limit:
        raise _Bad(path, f"is longer than {limit} characters")


def _list(v, path, limit, none=False) -> list:
    if v is None and none:
        return []
    if not isinstance(v, list):
        raise _Bad(path, f"must be a list, got {type(v).__name__}")
    if len(v) > limit:
        raise _Bad(path, f"has {len(v)} entries (at most {limit})")
    return v


def _dict(v, path, keys=None, required=(), limit=MAX_KEYS, none=False) -> dict:
    if v is None and none:
        return {}
    if not isinstance(v, dict):
        raise _Bad(path, f"must be an object, got {type(v).__name__}")
    if len(v) > limit:
        raise _Bad(path, f"has {len(v)} keys (at most {limit})")
    for k in v:
        _string(k, f"{path} key", MAX_NAME)
        if keys is not None and k not in keys:
            raise _Bad(path, f"has an unknown key {_show(k)}")
    for k in required:
        if k not in v:
            raise _Bad(path, f"lacks the key {k!r}")
    return v


def _small_json(v, path, depth=0):
    """Free-form metadata (provenance): plain JSON, nested at most 4 deep, every part bounded."""
    if depth > 4:
        raise _Bad(path, "is nested too deeply")
    if isinstance(v, dict):
        for k, item in _dict(v, path, limit=256).items():
            _small_json(item, f"{path}.{k}", depth + 1)
    elif isinstance(v, list):
        for i, item in enumerate(_list(v, path, 256)):
            _small_json(item, f"{path}[{i}]", depth + 1)
    elif isinstance(v, str):
        _string(v, path, 16 * MAX_STR)  # provenance's command line can be long
    elif v is not None and not isinstance(v, bool):
        _number(v, path)


def clean_png(data: bytes, path: str = "prompt_png") -> bytes:
    """Decode a PNG whose header declares at most MAX_PROMPT_SIDE x MAX_PROMPT_SIDE pixels and
    re-encode its pixels: what is stored is always our own encoding, never the bytes received."""
    from PIL import Image

    if not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR" or len(data) < 24:
        raise _Bad(path, "is not a PNG file")
    w, h = struct.unpack(">II", data[16:24])  # the IHDR's declared size, read before any decoder runs
    if not (0 < w <= MAX_PROMPT_SIDE and 0 < h <= MAX_PROMPT_SIDE):
        raise _Bad(path, f"is {w}x{h} pixels (at most {MAX_PROMPT_SIDE}x{MAX_PROMPT_SIDE})")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            img.load()
            mode = img.mode if img.mode in ("RGB", "RGBA") else (
                "RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
            out = io.BytesIO()
            (img if img.mode == mode else img.convert(mode)).save(out, format="PNG")
    except _Bad:
        raise
    except Exception as err:  # truncated, bad CRC, bad zlib stream, unsupported mode ...
        raise _Bad(path, f"is not a valid PNG: {type(err).__name__}: {err}") from None
    return out.getvalue()


def _prompt_png(v, path) -> str:
    _string(v, path, limit=4 * MAX_RECORD_BYTES)
    try:
        data = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(path, "is not base64") from None
    return base64.b64encode(clean_png(data, path)).decode()


def _config(config, digest, path="config"):
    _dict(config, path, limit=64)
    try:
        cfg = RunConfig.from_dict(config)
    except (TypeError, ValueError) as err:
        raise _Bad(path, f"invalid config: {err}") from None
    canonical = cfg.to_dict()
    for k, v in config.items():
        if v != canonical[k] or type(v) is not type(canonical[k]):
            raise _Bad(f"{path}.{k}", f"invalid config: {_show(v)} is not in canonical form ({_show(canonical[k])})")
    if cfg.hash() != digest:
        raise _Bad("hash", f"{digest!r} does not match its config ({cfg.hash()})")


def _predictions(v, path="predictions"):
    v = _dict(v, path, keys=("test", "val", "val_labels"), none=True)
    for part in ("test", "val"):
        if (arr := v.get(part)) is None:
            continue
        if isinstance(arr, dict) and isinstance(arr.get("data"), str) and len(arr["data"]) > MAX_PREDICTION_CHARS:
            raise _Bad(f"{path}.{part}", "prediction data is too large")
        try:
            decode_probs(arr)
        except PredictionError as err:
            raise _Bad(f"{path}.{part}", str(err)) from None
    for i, label in enumerate(_list(v.get("val_labels"), f"{path}.val_labels", MAX_PREDICTION_VALUES, none=True)):
        _number(label, f"{path}.val_labels[{i}]", 0, MAX_LIST, integer=True)


def _reliability(v, path="reliability"):
    _dict(v, path, keys=RELIABILITY, required=RELIABILITY)
    cols = {c: _list(v[c], f"{path}.{c}", MAX_BINS) for c in RELIABILITY}
    if len({len(c) for c in cols.values()}) != 1:
        raise _Bad(path, "columns differ in length")
    for c, values in cols.items():
        for i, x in enumerate(values):
            if c == "count":
                _number(x, f"{path}.{c}[{i}]", 0, MAX_COUNT, integer=True)
            else:
                _number(x, f"{path}.{c}[{i}]", 0.0, 1.0, none=c in ("accuracy", "confidence"))


def _curves(v, path="curves"):
    for i, row in enumerate(_list(v, path, MAX_ROWS, none=True)):
        for k, x in _dict(row, f"{path}[{i}]").items():
            _number(x, f"{path}[{i}].{k}", none=True)


def _ints(v, path):
    for i, x in enumerate(_list(v, path, MAX_LIST, none=True)):
        _number(x, f"{path}[{i}]", -1, 10 ** 7, integer=True)


def _scaled(v, path="scaled"):
    for k, x in _dict(v, path, keys=SCALED_REQUIRED + SCALED_OPTIONAL, required=SCALED_REQUIRED, none=True).items():
        _number(x, f"{path}.{k}", *RANGES[k])


def _named_numbers(lo, hi):
    def check(v, path):
        for k, x in _dict(v, path, none=True).items():
            _number(x, f"{path}.{k}", lo, hi, none=True)
    return check


CHECKS = {
    "metrics": lambda v, p: [_number(v[k], f"{p}.{k}", *RANGES[k]) for k in _dict(v, p, keys=METRICS, required=METRICS)],
    "scaled": _scaled, "predictions": _predictions, "reliability": _reliability, "curves": _curves,
    **{k: (lambda v, p: _number(v, p, 0, MAX_COUNT, integer=True, none=True))
       for k in ("n_test", "n_train", "n_val", "best_epoch", "steps")},
    "remaining_fraction": lambda v, p: _number(v, p, 0.0, 1.0),
    "prompt_shift": lambda v, p: _number(v, p, 0.0, 1.0, none=True),
    "per_class_accuracy": lambda v, p: [_number(x, f"{p}[{i}]", 0.0, 1.0, none=True)
                                        for i, x in enumerate(_list(v, p, MAX_LIST, none=True))],
    "classes": lambda v, p: [_string(x, f"{p}[{i}]", MAX_NAME) for i, x in enumerate(_list(v, p, MAX_LIST, none=True))],
    "sparsity": _named_numbers(0.0, 1.0), "timings": _named_numbers(0.0, math.inf),
    "ticket": lambda v, p: _string(v, p, MAX_NAME * 2, none=True),
    "mapping": _ints,
    "mapping_history": lambda v, p: [_ints(r, f"{p}[{i}]") for i, r in enumerate(_list(v, p, MAX_ROWS, none=True))],
    "provenance": lambda v, p: _small_json(_dict(v, p, limit=256, none=True), p),
}


def validate_record(record, name: str | None = None) -> dict:
    """A clean copy of ``record`` that fits the schema, or :class:`RecordError` naming ``name``
    (default: the record's hash) and the field."""
    if not isinstance(record, dict):
        raise RecordError(f"{name or 'result'}: a result must be a JSON object, got {type(record).__name__}")
    record = {k: v for k, v in record.items() if k not in RUNTIME}
    name = name or f"result {_show(record.get('hash'))}"
    try:
        for key in record:
            if key not in FIELDS:
                raise _Bad(key, "is not a known result field")
        for key in REQUIRED:
            if key not in record:
                raise _Bad(key, "is missing")
        _string(record["hash"], "hash", 16)
        if not HASH.fullmatch(record["hash"]):
            raise _Bad("hash", f"must be 16 lowercase hex digits, got {_show(record['hash'])}")
        try:
            size = len(json.dumps({k: v for k, v in record.items() if k != "predictions"}))  # NaN: the field says
        except (TypeError, ValueError, RecursionError) as err:
            raise RecordError(f"{name}: the record is not plain JSON ({type(err).__name__}: {err})") from None
        if size > MAX_RECORD_BYTES:
            raise RecordError(f"{name}: the record is too large: {size} bytes of JSON "
                              f"(at most {MAX_RECORD_BYTES}, predictions apart)")
        _config(record["config"], record["hash"])
        for key, check in CHECKS.items():
            if key in record:
                check(record[key], key)
        check_consistency(record)  # the fields agree with each other (class counts, split sizes, preset)
        clean = dict(record)
        if record.get("prompt_png") is not None:
            clean["prompt_png"] = _prompt_png(record["prompt_png"], "prompt_png")
    except _Bad as bad:
        raise RecordError(f"{name}: field {_show(bad.args[0])}: {bad.args[1]}") from None
    return clean


_CONFIG_DEFAULTS = RunConfig().to_dict()  # defaults of every config field, from the dataclass


def stored_problem(key: str, text: str | None, has_row: bool) -> str | None:
    """What is wrong with the result stored under ``key`` (its JSON text), or None."""
    if text is None:
        return f"result {key}: a table row without its result"
    try:
        record = validate_record(json.loads(text), f"result {key}")
    except (ValueError, TypeError, RecursionError) as err:
        return str(err)
    if record["hash"] != key:
        return f"result {key}: stored under {key} but names itself {record['hash']}"
    return None if has_row else f"result {key}: its table row is missing"


def flat_row(record: dict) -> dict:
    """The tabular view of one result: config (RunConfig's defaults where older records lack a field; shots as
    canonical text, :func:`lthvp.results.shots.text`), metrics, timing."""
    scaled = record.get("scaled") or {}
    return {"hash": record["hash"], **_CONFIG_DEFAULTS, **record["config"], "shots": shots.text(record["config"]["shots"]),
            **{k: record["metrics"][k] for k in METRICS},
            **{f"ts_{k}": scaled.get(k) for k in ("ece", "mce", "nll", "brier")},
            "temperature": scaled.get("temperature"), "prompt_shift": record.get("prompt_shift"),
            "remaining_fraction": record["remaining_fraction"], "best_epoch": record.get("best_epoch"),
            "seconds": (record.get("timings") or {}).get("total_seconds"),
            "created": (record.get("provenance") or {}).get("created")}
