"""Results store, bundles (round trip and hostile inputs), and the config hash that keys them."""

import base64
import dataclasses
import json
import pickle
import struct
import zipfile

import pytest

import lthvp.results.store as store_mod
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve
from lthvp.results.store import BundleError, ResultStore

from helpers import bundle_manifest, bundle_members, make_record, png_b64


def test_put_get_has_table_version(store):
    assert len(store) == 0 and store.version == 0 and store.table().empty
    a, b = make_record(0), make_record(1, method="lp", level=2)
    assert not store.has(a["hash"]) and store.get(a["hash"]) is None
    store.put(a)
    assert store.version == 1 and store.has(a["hash"]) and store.get(a["hash"]) == a
    store.put(b)
    assert store.version == 2 and len(store) == 2
    assert store.hashes() == sorted([a["hash"], b["hash"]])
    table = store.table()
    assert len(table) == 2
    row = table.set_index("hash").loc[b["hash"]]
    assert row["method"] == "lp" and row["level"] == 2 and row["shots"] == "5"
    assert row["accuracy"] == pytest.approx(b["metrics"]["accuracy"])
    assert row["remaining_fraction"] == pytest.approx(0.64) and row["seconds"] == 1.5
    assert "prompt_png" not in table.columns and "reliability" not in table.columns
    # overwrite bumps the version, keeps one entry
    store.put({**a, "best_epoch": 9})
    assert store.version == 3 and len(store) == 2 and store.get(a["hash"])["best_epoch"] == 9
    # persistent across instances
    again = ResultStore(store.directory)
    assert again.get(b["hash"]) == b and again.version == 3


def test_store_never_evicts(store):
    assert store.cache.eviction_policy == "none"
    assert store.cache.size_limit >= 2 ** 40


def test_store_rejects_nan_records(store):
    bad = make_record(0)
    bad["metrics"]["ece"] = float("nan")
    with pytest.raises(ValueError):
        store.put(bad)
    assert len(store) == 0 and store.version == 0


def test_bundle_roundtrip(store, tmp_path):
    records = [make_record(0), make_record(1, method="lp", level=1), make_record(2, level=3)]
    for r in records:
        store.put(r)
    path = store.export_bundle(tmp_path / "out" / "bundle.zip", note="hello")
    assert path.exists()
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["count"] == 3 and manifest["note"] == "hello"
    assert f"prompts/{records[0]['hash']}.png" in names and f"prompts/{records[1]['hash']}.png" not in names
    fresh = ResultStore(tmp_path / "fresh")
    assert fresh.import_bundle(path) == 3
    assert fresh.version == 1
    for r in records:
        assert fresh.get(r["hash"]) == store.get(r["hash"])
    assert fresh.get(records[0]["hash"])["prompt_png"] == records[0]["prompt_png"]
    assert len(fresh.table()) == 3
    # idempotent: a second import adds nothing and does not bump the version
    assert fresh.import_bundle(path) == 0 and fresh.version == 1
    # export a subset
    sub = store.export_bundle(tmp_path / "sub.zip", keys=[records[1]["hash"]])
    other = ResultStore(tmp_path / "other")
    assert other.import_bundle(sub) == 1 and other.hashes() == [records[1]["hash"]]


# hostile bundles -------------------------------------------------------------------------------

@pytest.fixture
def populated(store):
    store.put(make_record(100))
    return store


def _snapshot(s):
    return s.version, s.hashes(), [s.get(h) for h in s.hashes()]


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _assert_rejected(store, path, match=None):
    before = _snapshot(store)
    with pytest.raises(BundleError, match=match):
        store.import_bundle(path)
    assert _snapshot(store) == before
    return before


def test_valid_handmade_bundle_is_accepted(populated, tmp_path):
    good = make_record(1)
    path = _write_zip(tmp_path / "ok.zip", [bundle_manifest([good["hash"]]), *bundle_members(good)])
    assert populated.import_bundle(path) == 1 and populated.get(good["hash"]) == good


@pytest.mark.parametrize("name", ["../x.json", "results/../../x.json", "/abs/x.json", "/etc/passwd",
                                  "C:/x.json", "results\\..\\x.json"])
def test_path_traversal_and_absolute_paths_rejected(populated, tmp_path, name):
    good = make_record(1)
    path = _write_zip(tmp_path / "b.zip", [bundle_manifest([good["hash"]]), *bundle_members(good), (name, b"{}")])
    _assert_rejected(populated, path, match="unsafe path")
    assert not populated.has(good["hash"])
    assert not (tmp_path / "x.json").exists()


def test_symlink_member_rejected(populated, tmp_path):
    good = make_record(1)
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in [bundle_manifest([good["hash"]]), *bundle_members(good)]:
            zf.writestr(name, data)
        info = zipfile.ZipInfo("results/evil.json")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    _assert_rejected(populated, path, match="link")
    assert not populated.has(good["hash"])


def test_oversize_member_rejected(populated, tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "MAX_MEMBER_BYTES", 10_000)
    good = make_record(1)
    big = json.dumps({"pad": "x" * 50_000}).encode()
    path = _write_zip(tmp_path / "big.zip", [bundle_manifest([good["hash"]]), *bundle_members(good), ("results/big.json", big)])
    _assert_rejected(populated, path, match="too large")
    assert not populated.has(good["hash"])


def test_zip_bomb_member_rejected(populated, tmp_path):
    good = make_record(1)
    bomb = b"\0" * (store_mod.MAX_MEMBER_BYTES + 1024 * 1024)  # ~9 MiB of zeros, compresses to ~9 KiB
    path = _write_zip(tmp_path / "bomb.zip", [bundle_manifest([good["hash"]]), *bundle_members(good), ("results/bomb.json", bomb)])
    assert path.stat().st_size < 100_000
    _assert_rejected(populated, path)
    assert not populated.has(good["hash"])


def _lie_about_size(path, member, fake_size):
    """Rewrite the declared uncompressed size of ``member`` in both zip headers."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    # local file header: signature PK\x03\x04, uncompressed size at +22, name at +30
    pos = data.find(b"PK\x03\x04" + b"")
    while pos != -1:
        nlen = struct.unpack_from("<H", data, pos + 26)[0]
        if bytes(data[pos + 30:pos + 30 + nlen]) == name:
            struct.pack_into("<I", data, pos + 22, fake_size)
        pos = data.find(b"PK\x03\x04", pos + 4)
    # central directory: signature PK\x01\x02, uncompressed size at +24, name at +46
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        nlen = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46:pos + 46 + nlen]) == name:
            struct.pack_into("<I", data, pos + 24, fake_size)
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))


def test_zip_bomb_with_lying_header_rejected(populated, tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "MAX_MEMBER_BYTES", 100_000)
    good = make_record(1)
    bomb = b" " * 2_000_000  # valid-JSON whitespace that expands far beyond the limit
    path = _write_zip(tmp_path / "liar.zip", [bundle_manifest([good["hash"]]), *bundle_members(good), ("results/liar.json", bomb)])
    _lie_about_size(path, "results/liar.json", 10)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("results/liar.json").file_size == 10
    _assert_rejected(populated, path)
    assert not populated.has(good["hash"])


def test_bad_json_rejected(populated, tmp_path):
    good = make_record(1)
    path = _write_zip(tmp_path / "badjson.zip",
                      [bundle_manifest([good["hash"]]), *bundle_members(good), ("results/broken.json", b"{not json")])
    _assert_rejected(populated, path, match="JSON")
    path = _write_zip(tmp_path / "badmanifest.zip", [("manifest.json", b"\xff\xfe{"), *bundle_members(good)])
    _assert_rejected(populated, path)
    assert not populated.has(good["hash"])


def test_hash_not_matching_config_rejected(populated, tmp_path):
    good, forged = make_record(1), make_record(2, with_prompt=False)
    forged["hash"] = good["hash"][::-1]
    path = _write_zip(tmp_path / "forged.zip", [bundle_manifest(), *bundle_members(good), *bundle_members(forged)])
    _assert_rejected(populated, path, match="does not match")
    # a config edited after hashing
    tampered = make_record(3, with_prompt=False)
    tampered["config"]["seed"] = 99
    path = _write_zip(tmp_path / "tampered.zip", [bundle_manifest(), *bundle_members(tampered)])
    _assert_rejected(populated, path, match="does not match")
    assert not populated.has(good["hash"])


def test_missing_manifest_rejected(populated, tmp_path):
    good = make_record(1)
    path = _write_zip(tmp_path / "nomanifest.zip", bundle_members(good))
    _assert_rejected(populated, path, match="manifest")
    wrong = _write_zip(tmp_path / "wrongformat.zip",
                       [("manifest.json", json.dumps({"format": "other", "version": 1}).encode()), *bundle_members(good)])
    _assert_rejected(populated, wrong)


def test_non_png_prompt_rejected(populated, tmp_path):
    good = make_record(1)
    members = bundle_members(good)
    members[0] = (members[0][0], b"GIF89a" + b"\0" * 64)
    path = _write_zip(tmp_path / "gif.zip", [bundle_manifest(), *members])
    _assert_rejected(populated, path, match="PNG")
    # PNG magic but garbage after it
    members[0] = (members[0][0], b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    path = _write_zip(tmp_path / "fakepng.zip", [bundle_manifest(), *members])
    _assert_rejected(populated, path, match="PNG")
    # a prompt reference pointing elsewhere
    rec = make_record(2, with_prompt=False)
    rec["prompt"] = "prompts/someone_else.png"
    path = _write_zip(tmp_path / "ref.zip", [bundle_manifest(), *bundle_members(rec), ("prompts/someone_else.png",
                                                                         base64.b64decode(png_b64()))])
    _assert_rejected(populated, path, match="prompt")


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickle_members_rejected(populated, tmp_path, capsys):
    good = make_record(1)
    payload = pickle.dumps(_Evil())
    for name in ("results/evil.pkl", "evil.pickle", "results/evil.json", "data/evil.npy"):
        path = _write_zip(tmp_path / "pickle.zip", [bundle_manifest([good["hash"]]), *bundle_members(good), (name, payload)])
        _assert_rejected(populated, path)
    assert "unpickled!" not in capsys.readouterr().out
    assert not populated.has(good["hash"])


def test_invalid_records_rejected(populated, tmp_path):
    base = make_record(1, with_prompt=False)
    cases = []
    r = dict(base)
    del r["metrics"]
    cases.append(r)
    r = json.loads(json.dumps(base))
    r["metrics"]["ece"] = "low"
    cases.append(r)
    r = json.loads(json.dumps(base))
    r["remaining_fraction"] = 1.5
    cases.append(r)
    r = json.loads(json.dumps(base))
    r["config"]["method"] = "finetune"
    cases.append(r)
    r = json.loads(json.dumps(base))
    r["reliability"]["count"] = r["reliability"]["count"][:-1]
    cases.append(r)
    for i, rec in enumerate(cases):
        path = _write_zip(tmp_path / f"inv{i}.zip", [bundle_manifest(), (f"results/r{i}.json", json.dumps(rec).encode())])
        _assert_rejected(populated, path)
    # the same result listed twice
    path = _write_zip(tmp_path / "dup.zip", [bundle_manifest(), ("results/a.json", json.dumps(base).encode()),
                                            ("results/b.json", json.dumps(base).encode())])
    _assert_rejected(populated, path, match="twice")


def test_not_a_bundle(populated, tmp_path):
    (tmp_path / "x.zip").write_bytes(b"hello, not a zip")
    _assert_rejected(populated, tmp_path / "x.zip", match="zip")
    _assert_rejected(populated, tmp_path / "missing.zip", match="no bundle")
    assert issubclass(BundleError, ValueError)


# config hash ------------------------------------------------------------------------------------

ALTERNATIVES = {"preset": "paper", "dataset": "mnist", "method": "lp", "level": 3, "shots": 5, "seed": 1,
                "arm": "random", "epochs": 7, "lr": 0.1, "batch_size": 32, "image_size": 20, "mapping": "flm",
                "assignment": "hungarian", "lp_input": "matched", "family": 2, "steps": 1000, "val_per_class": 5,
                "precision": "bf16"}


def test_config_hash_stable_and_sensitive_to_every_field():
    base = RunConfig(level=1)
    assert base.hash() == RunConfig(level=1).hash()
    assert len(base.hash()) == 16 and int(base.hash(), 16) >= 0
    assert RunConfig.from_dict(base.to_dict()).hash() == base.hash()
    assert set(ALTERNATIVES) == {f.name for f in dataclasses.fields(RunConfig)}
    seen = {base.hash()}
    for name, value in ALTERNATIVES.items():
        changed = base.replace(**{name: value})
        assert changed.hash() != base.hash(), name
        seen.add(changed.hash())
    assert len(seen) == len(ALTERNATIVES) + 1


def test_resolve_fills_defaults():
    from lthvp.results.presets import MINI

    vp = resolve(RunConfig(method="vp", shots="full"))
    assert (vp.epochs, vp.batch_size, vp.lr, vp.image_size) == (
        MINI.vp_epochs["full"], MINI.vp_batch["full"], MINI.vp_lr, MINI.image_size("digits"))
    one = resolve(RunConfig(method="vp", shots=1))
    assert (one.epochs, one.batch_size) == (MINI.vp_epochs[1], MINI.vp_batch[1])
    three = resolve(RunConfig(method="vp", shots=3))  # between table entries: the next lower one (2)
    assert (three.epochs, three.batch_size) == (MINI.vp_epochs[2], MINI.vp_batch[2])
    lp = resolve(RunConfig(method="lp"))
    assert (lp.epochs, lp.batch_size, lp.lr, lp.image_size) == (MINI.lp_epochs, MINI.lp_batch, MINI.lp_lr, 32)
    assert resolve(RunConfig(method="lp", lp_input="matched")).image_size == MINI.image_size("digits") == 24
    assert resolve(RunConfig(epochs=5)).epochs == 5
    for cfg in (vp, one, lp):
        assert None not in (cfg.epochs, cfg.batch_size, cfg.lr, cfg.image_size)
        assert resolve(cfg) == cfg
    # explicit defaults and implicit defaults are the same run
    assert resolve(RunConfig(method="vp", epochs=MINI.vp_epochs["full"])).hash() == vp.hash()
    # VP-only knobs do not split LP runs
    assert resolve(RunConfig(method="lp", mapping="rlm", assignment="hungarian")).hash() == lp.hash()
    with pytest.raises(ValueError, match="preset"):
        resolve(RunConfig(preset="nope"))


@pytest.mark.parametrize("kwargs", [{"method": "finetune"}, {"shots": 0}, {"shots": -2}, {"shots": "abc"},
                                    {"shots": "0"}, {"mapping": "xlm"}, {"assignment": "random"},
                                    {"arm": "magic"}, {"level": -1}, {"arm": "random", "level": 0},
                                    {"lp_input": "crop"}])
def test_invalid_config_raises(kwargs):
    with pytest.raises(ValueError):
        RunConfig(**kwargs)


def test_shots_parsing_and_from_dict():
    assert RunConfig(shots="FULL").shots == "full"
    assert RunConfig(shots="5").shots == 5
    assert RunConfig(shots="5").hash() == RunConfig(shots=5).hash()
    with pytest.raises(ValueError, match="unknown RunConfig fields"):
        RunConfig.from_dict({"method": "vp", "lr_schedule": "cosine"})
