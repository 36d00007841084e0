"""Bundle format 2: results as JSON lines, per-sample predictions as binary blocks, every member's
sha256 in the manifest.

Format 1 (``results/<hash>.json`` per result, predictions as base64 float16 inside the JSON) cost
about 17 KB a run; the v3 study has thousands. Format 2 (docs/RELIABILITY.md, "Bundle format 2"):

- ``records/NNNN.jsonl``: one result per line, ordered by cell, so DEFLATE shares keys, configs
  and curves between neighbours; each ``predictions.test`` / ``.val`` is a reference
  ``{"dtype": "float16", "shape": [N, K], "block": "arrays/NNNN.npy", "row": i}``.
- ``arrays/NNNN.npy``: prediction blocks (:mod:`lthvp.results.prediction_blocks`); identical arrays
  are stored once.
- ``prompts/<hash>.png``: a VP run's prompt, as in format 1.
- ``manifest.json``: format, version 2, count, results, ``members`` (name -> sha256 and bytes) and
  ``dropped`` (what the export left out, e.g. ``kshot_val_predictions``).

Reading refuses any member the manifest does not list, any listed member that is missing or whose
size or sha256 differs, any block row no result uses, and any reference that does not fit its
record; each refusal is one line naming the member. The records are then validated exactly as
format 1's (:class:`RunRecord`), after the arrays are put back inline, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from typing import Iterable

import numpy as np

from lthvp.results import prediction_blocks as blocks
from lthvp.results.predictions import encode_probs, stored_probs
from lthvp.results.provenance import now_iso, provenance
from lthvp.results.record_schema import RecordError
from lthvp.results.run_record import RunRecord
from lthvp.results.safe_files import printable
from lthvp.results.shots import sort_key as shots_sort_key

FORMAT = "lthvp-bundle"
VERSION = 2  # what export writes; read_bundle reads 1 and 2
DROP_KSHOT_VAL = "kshot_val_predictions"  # k-shot validation predictions (recomputable from prompt and mapping)
RECORDS_CHUNK_BYTES = 4 * 1024 * 1024  # a records member is closed once it holds this much JSON
MEMBER = re.compile(r"records/\d{4,6}\.jsonl|arrays/\d{4,6}\.npy|prompts/[0-9a-f]{16}\.png")
REFERENCE_KEYS = {"dtype", "shape", "block", "row"}


class BundleError(RecordError):
    """An invalid bundle; importing it changed nothing. The message is printable: member names
    and values quoted from the bundle cannot carry terminal escapes or line breaks."""

    def __init__(self, message):
        super().__init__(printable(message))


def _order(config: dict) -> tuple:
    """Neighbours in a bundle are runs of one cell (family, arm, level, method), then shots and seed."""
    shots = config.get("shots")
    return (str(config.get("dataset")), str(config.get("preset")), -1 if config.get("family") is None
            else config["family"], str(config.get("arm")), config.get("level", 0), str(config.get("method")),
            shots_sort_key(shots), config.get("seed", 0), json.dumps(config, sort_keys=True))


class _Writer:
    """Streams records into records/ and arrays/ members; keeps only unfinished blocks in memory."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf, self.members = zf, {}
        self.seen: dict[bytes, dict] = {}  # digest of an array -> its reference (identical arrays stored once)
        self.open: dict[tuple, tuple[str, list]] = {}  # (N, K) -> (block name, arrays)
        self.blocks = self.lines = 0
        self.chunk: list[bytes] = []

    def _member(self, name: str, data: bytes) -> None:
        self.zf.writestr(name, data)
        self.members[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    def reference(self, obj: dict) -> dict:
        arr = stored_probs(obj)
        digest = hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).digest()
        if digest not in self.seen:
            name, pending = self.open.setdefault(arr.shape, (f"arrays/{self.blocks:04d}.npy", []))
            if not pending:
                self.blocks += 1
            pending.append(arr)
            self.seen[digest] = {"dtype": "float16", "shape": list(arr.shape), "block": name, "row": len(pending) - 1}
            if len(pending) * arr.nbytes >= blocks.BLOCK_BYTES:
                self._flush_block(arr.shape)
        return self.seen[digest]

    def _flush_block(self, shape) -> None:
        name, pending = self.open.pop(shape)
        self._member(name, blocks.pack(pending))

    def record(self, line: bytes) -> None:
        self.chunk.append(line)
        if sum(map(len, self.chunk)) >= RECORDS_CHUNK_BYTES:
            self._flush_records()

    def _flush_records(self) -> None:
        if self.chunk:
            self._member(f"records/{self.lines:04d}.jsonl", b"\n".join(self.chunk) + b"\n")
            self.lines, self.chunk = self.lines + 1, []

    def close(self) -> dict:
        for shape in list(self.open):
            self._flush_block(shape)
        self._flush_records()
        return self.members


def write(zf: zipfile.ZipFile, records: Iterable[dict], drop_kshot_val: bool = False) -> tuple[list[str], dict]:
    """Write ``records`` (JSON form, already in bundle order) as format-2 members; returns the hashes
    written and the members' digests for the manifest."""
    import base64

    writer, hashes = _Writer(zf), []
    for record in records:
        record = {k: v for k, v in record.items() if k != "cached"}
        png = record.pop("prompt_png", None)
        if png:
            record["prompt"] = f"prompts/{record['hash']}.png"
            writer._member(record["prompt"], base64.b64decode(png))
        predictions = dict(record.get("predictions") or {})
        if drop_kshot_val and record["config"].get("shots") != "full":
            predictions.update(val=None, val_labels=None)
        for part in ("test", "val"):
            if predictions.get(part) is not None:
                predictions[part] = writer.reference(predictions[part])
        if record.get("predictions") is not None:
            record["predictions"] = predictions
        writer.record(json.dumps(record, allow_nan=False, sort_keys=True).encode())
        hashes.append(record["hash"])
    return hashes, writer.close()


def export(store, f, keys: list[str], note: str, drop_kshot_val: bool = False) -> None:
    """Write ``store``'s results ``keys`` to the open file ``f`` as a format-2 bundle."""
    configs = {key: (store.get(key) or {}).get("config") or {} for key in dict.fromkeys(keys)}
    order = sorted(configs, key=lambda key: _order(configs[key]))  # a second pass reads each record again
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        hashes, members = write(zf, store.records(order), drop_kshot_val)
        manifest = {"format": FORMAT, "version": VERSION, "count": len(hashes), "results": hashes,
                    "exported": now_iso(), "note": note, "provenance": provenance(), "members": members,
                    "dropped": [DROP_KSHOT_VAL] if drop_kshot_val else []}
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))


# --- reading --------------------------------------------------------------------------------------

def listed_count(path) -> int | None:
    """How many results a bundle lists, before it is read and validated (None if unreadable): a
    format-2 manifest's ``results``, else format 1's ``results/*.json`` members."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "manifest.json" in names and zf.getinfo("manifest.json").file_size <= 32 * 1024 * 1024:
                manifest = json.loads(zf.read("manifest.json"))
                if isinstance(manifest, dict) and manifest.get("version") == VERSION:
                    return len(manifest["results"]) if isinstance(manifest.get("results"), list) else None
            return sum(1 for n in names if n.startswith("results/") and n.endswith(".json"))
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError, RecursionError):
        return None


def _listed(manifest: dict, by_name: dict) -> dict:
    """The manifest's members, checked against the zip's: each listed once, each present."""
    members = manifest.get("members")
    if not isinstance(members, dict):
        raise BundleError("manifest.json: a format-2 manifest needs 'members' (name -> sha256 and bytes)")
    for name, entry in members.items():
        if not MEMBER.fullmatch(name):
            raise BundleError(f"manifest.json lists {name!r}, which is not a format-2 member name")
        if (not isinstance(entry, dict) or set(entry) != {"sha256", "bytes"} or not isinstance(entry["sha256"], str)
                or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) or isinstance(entry["bytes"], bool)
                or not isinstance(entry["bytes"], int) or entry["bytes"] < 0):
            raise BundleError(f"manifest.json: the entry of {name!r} must be {{'sha256': 64 hex digits, 'bytes': n}}")
        if name not in by_name:
            raise BundleError(f"{name}: listed in manifest.json but missing from the bundle")
    for name in by_name:
        if name != "manifest.json" and not name.endswith("/") and name not in members:
            raise BundleError(f"{name}: bundle member not listed in manifest.json")
    return members


def _inline(ref, where: str, part: str, record: dict, arrays: dict, used: dict) -> dict:
    """A block reference replaced by the inline array it names (the stored float16 bits)."""
    if not isinstance(ref, dict) or set(ref) != REFERENCE_KEYS:
        raise BundleError(f"{where}: field 'predictions.{part}' must reference a block: keys {sorted(REFERENCE_KEYS)}")
    name, row = ref["block"], ref["row"]
    if name not in arrays:
        raise BundleError(f"{where}: field 'predictions.{part}' names {str(name)[:80]!r}, not a block of this bundle")
    block = arrays[name]
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(block):
        raise BundleError(f"{where}: field 'predictions.{part}': row {repr(row)[:20]} is not a row of {name} "
                          f"(0-{len(block) - 1})")
    n, k = block.shape[2], block.shape[1]
    if ref["dtype"] != "float16" or ref["shape"] != [n, k]:
        raise BundleError(f"{where}: field 'predictions.{part}': {name} holds float16 arrays of shape [{n}, {k}], "
                          f"the record says {str(ref['dtype'])[:20]} {str(ref['shape'])[:40]}")
    count = record.get("n_test" if part == "test" else "n_val")
    if isinstance(count, int) and not isinstance(count, bool) and count != n:
        raise BundleError(f"{where}: field 'predictions.{part}': {name} holds {n} rows per result, but "
                          f"{'n_test' if part == 'test' else 'n_val'} is {count}")
    used[name][row] = True
    return encode_probs(blocks.array_at(block, row))


def read(zf: zipfile.ZipFile, by_name: dict, reader, manifest: dict) -> list[RunRecord]:
    """Every record of a format-2 bundle, validated (``reader``: the store's bounded member reader)."""
    import base64

    members = _listed(manifest, by_name)

    def member(name: str) -> bytes:
        info = by_name[name]
        if info.file_size != members[name]["bytes"]:
            raise BundleError(f"{name}: {info.file_size} bytes, manifest.json says {members[name]['bytes']}")
        data = reader.read(info)
        if hashlib.sha256(data).hexdigest() != members[name]["sha256"]:
            raise BundleError(f"{name}: its sha256 does not match manifest.json")
        return data

    arrays = {}
    for name in sorted(n for n in members if n.startswith("arrays/")):
        try:
            arrays[name] = blocks.unpack(member(name))
        except blocks.BlockError as err:
            raise BundleError(f"{name}: {err}") from None
    used = {name: np.zeros(len(block), dtype=bool) for name, block in arrays.items()}
    prompts, records = set(), []
    for name in sorted(n for n in members if n.startswith("records/")):
        try:
            lines = member(name).decode("utf-8").split("\n")
        except UnicodeDecodeError as err:
            raise BundleError(f"{name}: not UTF-8 ({err})") from None
        for number, line in enumerate(lines, 1):
            if not line and number == len(lines):
                continue
            where = f"{name} line {number}"
            try:
                record = json.loads(line)
            except RecursionError:
                raise BundleError(f"{where}: JSON nested too deeply") from None
            except ValueError as err:
                raise BundleError(f"malformed JSON in {where}: {err}") from None
            if isinstance(record, dict) and isinstance(record.get("predictions"), dict):
                record["predictions"] = dict(record["predictions"])
                for part in ("test", "val"):
                    if record["predictions"].get(part) is not None:
                        record["predictions"][part] = _inline(record["predictions"][part], where, part, record,
                                                              arrays, used)
            prompt = record.pop("prompt", None) if isinstance(record, dict) else None
            if prompt is not None:
                if "prompt_png" in record or prompt != f"prompts/{record.get('hash')}.png" or prompt not in members:
                    raise BundleError(f"{where}: field 'prompt': {str(prompt)[:80]!r} is not this result's PNG "
                                      f"in the bundle")
                prompts.add(prompt)
                record["prompt_png"] = base64.b64encode(member(prompt)).decode()
            try:
                records.append(RunRecord.from_json(record, where))
            except RecordError as err:
                raise BundleError(str(err)) from None
    for name, rows in used.items():
        if not rows.all():
            raise BundleError(f"{name}: row {int(np.argmin(rows))} is used by no result")
    for name in members:
        if name.startswith("prompts/") and name not in prompts:
            raise BundleError(f"{name}: a prompt no result uses")
    listed = manifest.get("results")
    if not isinstance(listed, list) or sorted(map(str, listed)) != sorted(r.hash for r in records):
        raise BundleError(f"manifest.json: 'results' does not list exactly the {len(records)} results the records hold")
    return records
