"""The sweep's committed checkpoint parts carry every finished run to a fresh checkout exactly once."""

import importlib.util
import json
import zipfile

import pytest

from helpers import REPO, make_record
from lthvp.results.store import BundleError, ResultStore

spec = importlib.util.spec_from_file_location("sweep_checkpoint", REPO / "scripts" / "sweep_checkpoint.py")
checkpoint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checkpoint)


def test_parts_hold_each_run_once_and_restore_into_a_fresh_store(tmp_path):
    store, parts = ResultStore(tmp_path / "store"), tmp_path / "parts"
    first = [make_record(seed=s, family=f) for s in (0, 1) for f in (0, 1)]
    for record in first + [make_record(seed=0, family=None), make_record(seed=0, family=3)]:
        store.put(record)  # the legacy family and family 3 are not selected

    assert checkpoint.main(["save", "--store", str(store.directory), "--parts", str(parts)]) == 0
    assert checkpoint.saved_hashes(parts) == {r["hash"] for r in first}
    assert checkpoint.save(store, parts, "mini", "digits", ["0", "1", "2"]) is None  # nothing new

    later = make_record(seed=2, family=2)
    store.put(later)
    part = checkpoint.save(store, parts, "mini", "digits", ["0", "1", "2"])
    assert part.name == "part_001.zip"
    with zipfile.ZipFile(part) as zf:
        assert json.loads(zf.read("manifest.json"))["results"] == [later["hash"]]

    fresh = ResultStore(tmp_path / "fresh")
    assert checkpoint.restore(fresh, parts) == (5, 0)
    assert set(fresh.hashes()) == {r["hash"] for r in first} | {later["hash"]}
    assert checkpoint.restore(fresh, parts) == (0, 5)  # a second restore adds nothing

    (parts / "part_000.zip").unlink()  # a gap: its runs go to a new part after the last one
    assert checkpoint.save(store, parts, "mini", "digits", ["0", "1", "2"]).name == "part_002.zip"
    assert checkpoint.saved_hashes(parts) == {r["hash"] for r in first} | {later["hash"]}


def test_a_damaged_part_is_rejected_whole(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part_000.zip").write_bytes(b"not a zip")
    fresh = ResultStore(tmp_path / "fresh")
    with pytest.raises(BundleError):
        checkpoint.restore(fresh, parts)
    assert len(fresh) == 0
