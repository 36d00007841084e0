"""Reliability v2 (issue 29): records that are valid field by field but inconsistent as a whole,
the size budget, feature caches that cannot lie, settings bounds at entry, and safe output paths.
Every hostile case ends in one line naming what is wrong, with the store (or the target) unchanged."""

from __future__ import annotations

import base64
import dataclasses
import errno
import hashlib
import io
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, bundle_members, make_record
from lthvp.commands.cli import main
from lthvp.results.config import V1_FIELDS, RunConfig
from lthvp.results.metrics import evaluate
from lthvp.results.predictions import encode_probs
from lthvp.results.record_schema import METRICS, flat_row
from lthvp.results.run_record import RunRecord
from lthvp.results.store import BundleError, RecordError, ResultStore, read_bundle

V1_FIXTURE = REPO / "tests" / "fixtures" / "mini_digits_v1.zip"
SHIPPED = REPO / "cache" / "mini_digits.zip"


def full_record(seed=0, method="vp", **config):
    """A record with every part that can disagree: 10 classes, 40 test and 20 validation
    predictions with their labels, bins from the same test predictions, a mapping history."""
    rec = make_record(seed, method, with_prompt=False, **config)
    rng = np.random.default_rng(seed + 1000)
    test, labels = rng.dirichlet(np.ones(10), size=40), rng.integers(0, 10, size=40)
    m = evaluate(test, labels)
    rec.update(metrics={k: m[k] for k in METRICS}, reliability=m["reliability"], per_class_accuracy=m["per_class_accuracy"],
               classes=[f"class {i}" for i in range(10)], n_test=40, n_val=20, n_train=50,
               predictions={"test": encode_probs(test), "val": encode_probs(rng.dirichlet(np.ones(10), size=20)),
                            "val_labels": rng.integers(0, 10, size=20).tolist()},
               mapping_history=[list(range(10)), list(range(9, -1, -1))] if method == "vp" else None)
    return rec


def _forged(rec: dict, **config) -> dict:
    """``rec`` with config fields changed and the hash an attacker would compute for them."""
    cfg = {**rec["config"], **config}
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    ident = {k: v for k, v in cfg.items() if k in V1_FIELDS or v != defaults[k]}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    return {**rec, "config": cfg, "hash": digest}


def _bin_edit(rec, col, fn):
    rel = {k: list(v) for k, v in rec["reliability"].items()}
    i = next(i for i, n in enumerate(rel["count"]) if (n == 0) == (col == "empty"))
    fn(rel, i)
    return {**rec, "reliability": rel}


def _set(**fields):
    return lambda r: {**r, **fields}


def _pred(part, rows, cols):
    def change(r):
        probs = np.random.default_rng(7).dirichlet(np.ones(cols), size=rows)
        return {**r, "predictions": {**r["predictions"], part: encode_probs(probs)}}
    return change


def _labels(labels):
    return lambda r: {**r, "predictions": {**r["predictions"], "val_labels": labels}}


INCONSISTENT = {  # case -> (change to a full record, the field the message must name)
    "3 classes, mapping of 10": (_set(classes=["a", "b", "c"], per_class_accuracy=None, predictions=None), "'mapping'"),
    "3 classes, 10 per-class accuracies": (_set(classes=["a", "b", "c"]), "'per_class_accuracy'"),
    "per-class accuracy of another length": (lambda r: {**r, "per_class_accuracy": r["per_class_accuracy"][:7]},
                                             "'per_class_accuracy'"),
    "test predictions with 9 columns": (_pred("test", 40, 9), "'predictions.test'"),
    "test predictions with 39 rows": (_pred("test", 39, 10), "'predictions.test'"),
    "validation predictions with 19 rows": (_pred("val", 19, 10), "'predictions.val'"),
    "validation label out of range": (_labels([10] + [0] * 19), "'predictions.val_labels[0]'"),
    "validation labels of another length": (_labels([0] * 19), "'predictions.val_labels'"),
    "mapping-history rows of different lengths": (_set(mapping_history=[list(range(10)), list(range(9))]),
                                                  "'mapping_history[1]'"),
    "mapping to a source class the model lacks": (_set(mapping=[0, 1, 2, 10, 4, 5, 6, 7, 8, 9]), "'mapping[3]'"),
    "curve row without epoch": (_set(curves=[{"epoch": 1, "val_acc": 0.5}, {"val_acc": 0.6}]), "'curves[1].epoch'"),
    "curve row with a fractional epoch": (_set(curves=[{"epoch": 1.5, "val_acc": 0.5}]), "'curves[0].epoch'"),
    "unknown preset": (lambda r: _forged(r, preset="nopreset"), "'config.preset'"),
    "image larger than the canvas": (lambda r: _forged(r, image_size=100_000), "'config.image_size'"),
    "lr beyond the bound": (lambda r: _forged(r, lr=50.0), "lr must be"),
    "epochs beyond the bound": (lambda r: _forged(r, epochs=100_000_000), "epochs must be"),
    "bin edges reversed": (lambda r: _bin_edit(r, "full", lambda rel, i: rel["bin_upper"].__setitem__(
        i, rel["bin_lower"][i])), "reliability.bin_upper"),
    "value in an empty bin": (lambda r: _bin_edit(r, "empty", lambda rel, i: rel["accuracy"].__setitem__(i, 0.5)),
                              "reliability.accuracy"),
    "confidence outside its bin": (lambda r: _bin_edit(r, "full", lambda rel, i: rel["confidence"].__setitem__(
        i, min(1.0, rel["bin_upper"][i] + 0.05) if rel["bin_upper"][i] < 1 else 0.0)), "reliability.confidence"),
    "bins that do not hold n_test samples": (_set(n_test=41), "'reliability.count'"),
}


def test_the_full_record_is_consistent():
    for method in ("vp", "lp", "map"):
        RunRecord.from_json(full_record(3, method))


@pytest.mark.parametrize("case", list(INCONSISTENT))
def test_inconsistent_records_are_rejected_naming_the_field(tmp_path, case):
    change, needle = INCONSISTENT[case]
    rec = change(json.loads(json.dumps(full_record(5))))
    store = ResultStore(tmp_path / "store")
    store.put(full_record(6))
    before = (store.version, store.hashes())
    member = f"results/{rec['hash']}.json"
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "lthvp-bundle", "version": 1}))
        zf.writestr(member, json.dumps(rec))
    with pytest.raises(BundleError) as exc:
        store.import_bundle(path)
    message = str(exc.value)
    assert "\n" not in message and member in message and needle in message, message
    assert (store.version, store.hashes()) == before
    with pytest.raises(RecordError, match="field"):
        store.put(rec)
    assert (store.version, store.hashes()) == before


def test_store_check_finds_an_inconsistent_record_written_before_these_checks(tmp_path, capsys):
    from lthvp.commands import store_admin

    store = ResultStore(tmp_path / "store")
    bad = {**full_record(8), "classes": ["a", "b", "c"]}
    store.cache.set(f"result:{bad['hash']}", json.dumps(bad))
    store.cache.set(f"row:{bad['hash']}", json.dumps(flat_row(bad)))
    assert store_admin.check(store.directory) == 1
    out = capsys.readouterr().out
    assert f"bad {bad['hash']}" in out and "per_class_accuracy" in out and "1 bad" in out


def test_every_shipped_record_still_passes():
    """The retired v1 study and the shipped v2 study pass every whole-record check."""
    for bundle in (V1_FIXTURE, SHIPPED):
        if bundle.exists():
            assert read_bundle(bundle)  # raises on the first record that fails


# --- pages never raise on a stored record ----------------------------------------------------------

@pytest.fixture
def page_store(tmp_path):
    """Good VP runs at levels 2 and 4, and at level 0 a record that breaks the pages' indexing,
    written straight into the store as a release before the whole-record checks could have."""
    from streamlit import cache_data, cache_resource

    store = ResultStore(tmp_path / "store")
    for level in (2, 4):
        store.put(full_record(0, level=level))
    bad = full_record(0, level=0)
    bad.update(classes=["a", "b", "c"], mapping_history=[list(range(10)), list(range(4))],
               curves=[{"val_acc": 0.5}], per_class_accuracy=[0.5] * 7)
    store.cache.set(f"result:{bad['hash']}", json.dumps(bad))
    store.cache.set(f"row:{bad['hash']}", json.dumps(flat_row(bad)))
    store.cache.incr("version")
    old = {k: os.environ.get(k) for k in ("LTHVP_STORE", "LTHVP_AUTOSTART_WORKER")}
    os.environ.update(LTHVP_STORE=str(store.directory), LTHVP_AUTOSTART_WORKER="0")
    cache_data.clear()
    cache_resource.clear()
    yield bad["hash"]
    for k, v in old.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    cache_data.clear()
    cache_resource.clear()


def _render(page, query=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page(page)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return [w.value for w in at.warning]


def test_run_details_and_prompts_skip_a_record_they_cannot_draw(page_store):
    warnings = _render("pages/run-detail.py", {"hash": page_store})
    for part in ("training curves", "label mapping", "per-class accuracy"):
        assert any(part in w and "skipped" in w for w in warnings), warnings
    warnings = _render("pages/prompts.py")
    assert any(page_store in w and "skipped" in w for w in warnings), warnings


# --- the size budget --------------------------------------------------------------------------------

def big_record(seed: int, n: int = 400, k: int = 100) -> dict:
    """A valid LP record whose one-hot test predictions (n x k) compress to almost nothing."""
    rec = make_record(seed, "lp", with_prompt=False)
    labels = np.arange(n) % k
    probs = np.eye(k)[(labels + seed) % k]
    m = evaluate(probs, labels)
    rec.update(metrics={x: m[x] for x in METRICS}, reliability=m["reliability"],
               per_class_accuracy=m["per_class_accuracy"], n_test=n, predictions={"test": encode_probs(probs)})
    return rec


def _bundle(path, records):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps({"format": "lthvp-bundle", "version": 1}))
        for name, data in (m for r in records for m in bundle_members(r)):
            zf.writestr(name, data)
    return path


def test_budget_defaults_and_settings(monkeypatch):
    from lthvp.results import store_budget as b

    monkeypatch.delenv(b.IMPORT_ENV, raising=False)
    monkeypatch.delenv(b.STORE_ENV, raising=False)
    assert (b.import_limit(), b.store_limit()) == (256 * 2 ** 20, 8 * 2 ** 30)
    monkeypatch.setenv(b.IMPORT_ENV, "64M")
    monkeypatch.setenv(b.STORE_ENV, "123")
    assert (b.import_limit(), b.store_limit()) == (64 * 2 ** 20, 123)
    monkeypatch.setenv(b.STORE_ENV, "lots")
    with pytest.raises(b.BudgetError, match=b.STORE_ENV):
        b.store_limit()


def test_a_bundle_over_the_import_budget_is_refused_while_read(tmp_path, monkeypatch, capsys):
    """The incident in small: valid records whose predictions expand ~100x from the zip."""
    records = [big_record(i) for i in range(12)]
    path = _bundle(tmp_path / "big.zip", records)
    expanded = sum(len(json.dumps(r)) for r in records)
    assert path.stat().st_size * 20 < expanded  # the zip says little about what it brings
    store = ResultStore(tmp_path / "store")
    store.put(make_record(1))
    before = (store.version, store.hashes(), store.cache.volume())
    monkeypatch.setenv("LTHVP_MAX_IMPORT_BYTES", str(expanded // 3))
    with pytest.raises(BundleError, match="per-import budget") as exc:
        store.import_bundle(path)
    assert "\n" not in str(exc.value) and "LTHVP_MAX_IMPORT_BYTES" in str(exc.value)
    assert (store.version, store.hashes(), store.cache.volume()) == before
    assert main(["import", str(path), "--store", str(store.directory)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "per-import budget" in err
    monkeypatch.setenv("LTHVP_MAX_IMPORT_BYTES", str(10 * expanded))
    assert store.import_bundle(path) == len(records)


def test_the_import_budget_also_bounds_what_an_import_writes(tmp_path, monkeypatch):
    """Prompts travel as PNG members and are stored as base64: an import can write more than it read."""
    from PIL import Image

    records = []
    for seed in range(4):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(buf, "PNG")
        records.append({**make_record(seed, with_prompt=False), "prompt_png": base64.b64encode(buf.getvalue()).decode()})
    path = _bundle(tmp_path / "p.zip", records)
    with zipfile.ZipFile(path) as zf:
        read = sum(i.file_size for i in zf.infolist())
    store = ResultStore(tmp_path / "store")
    monkeypatch.setenv("LTHVP_MAX_IMPORT_BYTES", str(read + 10_000))
    with pytest.raises(BundleError, match="the import would add .* over the per-import budget"):
        store.import_bundle(path)
    assert (store.version, store.hashes()) == (0, [])


def test_the_store_wide_budget_refuses_imports_and_puts(tmp_path, monkeypatch):
    from lthvp.results.store_budget import BudgetError, used_bytes

    store = ResultStore(tmp_path / "store")
    store.put(big_record(0))
    path = _bundle(tmp_path / "b.zip", [big_record(i) for i in range(1, 6)])
    monkeypatch.setenv("LTHVP_MAX_STORE_BYTES", str(used_bytes(store.cache) + 50_000))
    before = (store.version, store.hashes())
    with pytest.raises(BundleError, match="would exceed its budget") as exc:
        store.import_bundle(path)
    assert "\n" not in str(exc.value) and "LTHVP_MAX_STORE_BYTES" in str(exc.value)
    with pytest.raises(BudgetError, match="would exceed its budget"):
        store.put(big_record(9))
    assert (store.version, store.hashes()) == before
    store.put(make_record(3))  # a small result still fits
    assert store.delete([big_record(0)["hash"]])  # deleting frees budget (pages in use, not the file's size)
    store.put(big_record(9))


# --- feature caches that cannot lie -----------------------------------------------------------------

def test_feature_cache_recomputes_whatever_does_not_prove_itself(tmp_path, caplog):
    import torch

    from lthvp.adapt.probing import FeatureCache

    cache = FeatureCache(tmp_path)
    key = ("ticket:a@sha", "digits", "train", "full:32:32", "digest")
    feats = torch.randn(6, 4)
    calls = []

    def compute():
        calls.append(1)
        return feats

    def get(shape=(6, 4)):
        return cache.get_or_compute(key, compute, shape=shape)

    assert torch.equal(get(), feats) and torch.equal(get(), feats) and calls == [1]  # a sound file is used
    path = cache.path(*key)

    def another_keys_file():
        cache.get_or_compute(("other",), lambda: torch.randn(6, 4))
        os.replace(cache.path("other"), path)

    def one_changed_value():  # key, shape, dtype and checksum kept: only the checksum can tell
        with np.load(path) as f:
            stored = dict(f)
        np.savez(path, **{**stored, "features": stored["features"] + np.eye(6, 4, dtype=np.float32)})

    forgeries = {  # how the file was forged -> (forge, why it is refused)
        "random arrays of the right shape": (lambda: np.savez(path, features=np.random.rand(6, 4).astype(np.float32)),
                                             "without its key, shape, dtype and checksum"),
        "a sound file of another key": (another_keys_file, "another key"),
        "one changed value": (one_changed_value, "checksum mismatch")}
    for name, (forge, reason) in forgeries.items():
        forge()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lthvp.adapt.probing"):
            assert torch.equal(get(), feats), name
        assert any(reason in r.getMessage() and "recomputing" in r.getMessage() for r in caplog.records), name
    assert len(calls) == 1 + len(forgeries)
    with caplog.at_level(logging.WARNING, logger="lthvp.adapt.probing"):
        assert torch.equal(cache.get_or_compute(key, compute, shape=(7, 4)), feats)  # the caller expects 7 rows
    assert any("shape (6, 4), expected (7, 4)" in r.getMessage() for r in caplog.records)
    nan_key = ("nan",)
    cache.get_or_compute(nan_key, lambda: torch.full((2, 2), float("nan")))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lthvp.adapt.probing"):
        assert torch.equal(cache.get_or_compute(nan_key, lambda: torch.ones(2, 2)), torch.ones(2, 2))
    assert any("non-finite" in r.getMessage() for r in caplog.records)


def test_split_digest_follows_the_pixels_and_is_computed_once():
    import torch

    from lthvp.adapt.probing import split_digest
    from lthvp.data.datasets import Split

    a = Split(torch.zeros(4, 3, 2, 2, dtype=torch.uint8), torch.arange(4))
    b = Split(a.x.clone(), a.y.clone())
    b.x[0, 0, 0, 0] = 1
    assert split_digest(a) != split_digest(b) and split_digest(a) == split_digest(Split(a.x.clone(), a.y.clone()))
    a.x[0, 0, 0, 0] = 1  # the data are fixed once loaded: the digest is kept on the split
    assert split_digest(a) != split_digest(b)


def test_an_lp_run_never_uses_a_lying_feature_cache(tmp_path, monkeypatch, caplog):
    """Cache files overwritten with random arrays of the right shape (and one of a wrong shape):
    the next LP run recomputes them and stores the accuracy of a clean run, with no traceback."""
    from lthvp.adapt.probing import _checksum
    from lthvp.compute.runner import run

    monkeypatch.setenv("LTHVP_FEATURES", str(tmp_path / "features"))
    cfg = RunConfig(dataset="digits", method="lp", level=0, shots=1, seed=0, epochs=2)
    clean = run(cfg, device="cpu").metrics["accuracy"]
    files = sorted((tmp_path / "features").glob("*.npz"))
    assert len(files) == 3  # train, val, test
    rng = np.random.default_rng(0)
    for path in files[1:]:
        with np.load(path) as f:
            shape = f["features"].shape
        np.savez(path, features=rng.standard_normal(shape).astype(np.float32))
    with np.load(files[0]) as f:  # a wrong shape, otherwise sound (its key, its own checksum): once an IndexError
        stored = dict(f)
    n, d = stored["features"].shape
    wrong = rng.standard_normal((n - 1, d + 3)).astype(np.float32)
    np.savez(files[0], **{**stored, "features": wrong, "shape": np.array(wrong.shape), "sha256": np.array(_checksum(wrong))})
    with caplog.at_level(logging.WARNING, logger="lthvp.adapt.probing"):
        again = run(cfg, device="cpu").metrics["accuracy"]
    assert again == clean
    warned = [r.getMessage() for r in caplog.records if "recomputing" in r.getMessage()]
    assert len(warned) == 3 and any(f"shape {(n - 1, d + 3)}, expected {(n, d)}" in w for w in warned), warned


# --- settings bounds at entry -----------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--lr", "1e308"], ["--lr", "1e299"], ["--lr", "11"],
                                  ["--image-size", "100000"], ["--image-size", "33"],
                                  ["--epochs", "100000000"], ["--steps", "10000000"]])
def test_cli_settings_beyond_their_bounds_exit_2_before_any_allocation(tmp_path, capsys, monkeypatch, args):
    import lthvp.compute.runner as runner

    def no_data(*a, **k):
        raise AssertionError("the data were loaded before the settings were checked")

    monkeypatch.setattr(runner, "load_dataset", no_data)
    code = main(["run", "--method", "vp", *args, "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err


def test_the_queue_gets_the_same_bounds(tmp_path):
    from lthvp.compute.jobs import JobQueue

    queue = JobQueue.for_store(tmp_path / "s")  # what the Run page submits to
    for cfg in (RunConfig(image_size=100_000), RunConfig(method="lp", lp_input="matched", image_size=33)):
        with pytest.raises(ValueError, match="canvas"):
            queue.submit(cfg)
    assert queue.jobs() == []
    for bad in ({"lr": 1e299}, {"epochs": 10_001}, {"steps": 1_000_001}):  # RunConfig itself, wherever it is built
        with pytest.raises(ValueError, match="must be"):
            RunConfig(**bad)
    assert RunConfig(lr=10, epochs=10_000, steps=1_000_000).lr == 10.0  # the bounds themselves are allowed


# --- output paths and CLI edges -----------------------------------------------------------------------

@pytest.fixture
def small_store(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.put(make_record(1))
    return store


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_never_writes_through_a_planted_symlink(small_store, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out" / "b.zip"
    out.parent.mkdir()
    os.symlink(victim, out.parent / "b.zip.tmp")  # where the old export wrote its temporary file
    assert _cli(capsys, "export", str(out), "--store", str(small_store.directory))[0] == 0
    assert victim.read_text() == "precious" and len(read_bundle(out)) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["b.zip", "b.zip.tmp"]  # no temporary file left
    linked = tmp_path / "linked.zip"
    os.symlink(victim, linked)  # the target itself a link: refused, never followed or replaced
    code, _, err = _cli(capsys, "export", str(linked), "--store", str(small_store.directory))
    assert code == 2 and err.count("\n") == 1 and "symbolic link" in err
    assert linked.is_symlink() and victim.read_text() == "precious"


@pytest.mark.parametrize("kind", ["directory", "fifo", "char device"])
def test_export_refuses_targets_that_are_not_regular_files(small_store, tmp_path, capsys, kind):
    target, said = {"directory": (tmp_path / "dir", "a directory"), "fifo": (tmp_path / "fifo", "a FIFO"),
                    "char device": (Path("/dev/null"), "a character device")}[kind]
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    code, _, err = _cli(capsys, "export", str(target), "--store", str(small_store.directory))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and said in err, err
    assert (target / "bundle.zip").exists() is False and target.exists()
    if kind != "char device":
        assert sorted(os.listdir(tmp_path)) == sorted([target.name, "store"])  # nothing written beside it


def test_a_failed_export_leaves_the_target_as_it_was(small_store, tmp_path, capsys, monkeypatch):
    target = tmp_path / "b.zip"
    target.write_bytes(b"the previous export")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = _cli(capsys, "export", str(target), "--store", str(small_store.directory))
    assert code == 2 and err.count("\n") == 1 and "No space left" in err, err
    assert target.read_bytes() == b"the previous export" and sorted(os.listdir(tmp_path)) == ["b.zip", "store"]


def test_figures_out_that_is_a_file_is_one_line(tmp_path, capsys):
    existing = tmp_path / "figs"
    existing.write_text("not a directory")
    code, _, err = _cli(capsys, "figures", str(V1_FIXTURE), "--out", str(existing))
    assert code == 2 and err.count("\n") == 1 and "not a directory" in err and existing.read_text() == "not a directory"


@pytest.mark.parametrize("argv", [["run", "--method", "lp"], ["import", "x.zip"], ["export", "x.zip"],
                                  ["store", "check"], ["worker", "--once"], ["effects"],
                                  ["subpopulations", "--level", "2"]])
def test_an_empty_store_path_is_refused(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, *argv, "--store", "")
    assert code == 2 and err.count("\n") == 1 and "--store is empty" in err
    assert os.listdir(tmp_path) == []  # no cache.db in the current folder


def test_effects_for_a_dataset_not_present_names_the_present_ones(small_store, capsys):
    code, out, err = _cli(capsys, "effects", "--dataset", "nonexistent", "--store", str(small_store.directory))
    assert code == 2 and out == "" and err.count("\n") == 1 and "'nonexistent'" in err and "digits" in err


def test_member_names_with_control_characters_are_printed_escaped(small_store, tmp_path, capsys):
    from lthvp.results.safe_files import printable

    rec = full_record(4)
    name = "results/\x1b[2J\x1b]0;pwned\x07\u202eevil\n.json"
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "lthvp-bundle", "version": 1}))
        zf.writestr(name, json.dumps({**rec, "classes": ["a"]}))
    code, _, err = _cli(capsys, "import", str(path), "--store", str(small_store.directory))
    assert code == 2 and err.count("\n") == 1 and "\\x1b[2J" in err and "\\u202e" in err
    assert not any(ch in err for ch in "\x1b\x07\u202e") and printable(err.strip()) == err.strip()
    assert printable("naïve 中文 \\x1b") == "naïve 中文 \\x1b"
