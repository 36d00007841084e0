"""Every store imports each shipped bundle once, by content digest: a fresh store gets the shipped
study, a store seeded by an older release picks up a newly shipped bundle, and nothing a user did
(own results, deletions) is undone."""

import shutil

from helpers import make_record
from lthvp.results.seeding import open_seeded_store
from lthvp.results.store import ResultStore


def bundle(tmp_path, name, records):
    src = ResultStore(tmp_path / f"src_{name}")
    for r in records:
        src.put(r)
    return src.export_bundle(tmp_path / "shipped" / f"{name}.zip", note=name)


def test_each_shipped_bundle_once_by_digest_keeping_user_work(tmp_path, monkeypatch):
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "shipped"))
    v1 = [make_record(i, method="lp") for i in range(3)]
    bundle(tmp_path, "study", v1)
    store, said = open_seeded_store(tmp_path / "store")
    assert len(store) == 3 and said == ["imported study.zip: 3 results added, 0 already stored or deleted here"]
    assert open_seeded_store(tmp_path / "store")[1] == []  # the same bundle again: nothing to do

    store.put(make_record(50, method="vp"))  # the user's own run
    store.delete([v1[0]["hash"]])  # and a shipped result the user removed
    v2 = v1 + [make_record(10 + i, method="vp", family=0) for i in range(2)]
    bundle(tmp_path, "study", v2)  # a new release ships a new study under the same name
    store, said = open_seeded_store(tmp_path / "store")
    assert said == ["imported study.zip: 2 results added, 3 already stored or deleted here"]
    hashes = set(store.hashes())
    assert {r["hash"] for r in v2[3:]} <= hashes and make_record(50, method="vp")["hash"] in hashes
    assert v1[0]["hash"] not in hashes  # deleted stays deleted


def test_a_store_seeded_before_digests_were_kept_is_topped_up_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "shipped"))
    path = bundle(tmp_path, "study", [make_record(i, method="lp") for i in range(2)])
    old = ResultStore(tmp_path / "store")
    assert old.import_bundle(path) == 2  # what the older release did: import, no digest kept
    assert open_seeded_store(tmp_path / "store")[1] == ["imported study.zip: 0 results added, "
                                                        "2 already stored or deleted here"]
    assert open_seeded_store(tmp_path / "store")[1] == []


def test_a_broken_shipped_bundle_is_named_and_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "shipped"))
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "bad.zip").write_bytes(b"not a zip")
    store, said = open_seeded_store(tmp_path / "store")
    assert len(store) == 0 and len(said) == 1 and said[0].startswith("could not import bad.zip: not a zip bundle")
    shutil.rmtree(tmp_path / "shipped")
    assert open_seeded_store(tmp_path / "store")[1] == []
