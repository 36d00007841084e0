"""Bad settings and hostile inputs end in a clear one-line rejection and change nothing."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

import lthvp.results.store as store_mod
from lthvp.commands.cli import main
from lthvp.results.config import V1_FIELDS, RunConfig
from lthvp.results.store import BundleError, RecordError, ResultStore, StoreError, read_bundle

from helpers import bundle_members, import_rejected, make_record


@pytest.mark.parametrize("kwargs,needle", [
    ({"lr": 0.0}, "lr must be > 0"), ({"lr": -1.0}, "lr must be"), ({"lr": float("inf")}, "lr must be"),
    ({"epochs": 0}, "epochs must be"), ({"epochs": -5}, "epochs must be"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -1}, "batch_size"), ({"image_size": 0}, "image_size"), ({"image_size": -4}, "image_size"),
    ({"seed": "abc"}, "seed must be"), ({"seed": True}, "seed must be"), ({"dataset": 123}, "dataset must be"),
    ({"level": 2.5}, "level must be"), ({"steps": -1}, "steps"), ({"family": "x"}, "family"),
])
def test_bad_settings_are_rejected_never_replaced(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        RunConfig(**kwargs)


@pytest.mark.parametrize("flag,value", [("--lr", "0"), ("--epochs", "0"), ("--batch-size", "-1"),
                                        ("--image-size", "-4"), ("--epochs", "-5")])
def test_cli_bad_settings_exit_2_with_one_line(tmp_path, capsys, flag, value):
    code = main(["run", "--method", "lp", flag, value, "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith("error:") and "Traceback" not in err


def test_worker_poll_must_be_positive(capsys):
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit) as exc:
            main(["worker", "--poll", bad])
        assert exc.value.code == 2 and "seconds > 0" in capsys.readouterr().err


def test_store_path_that_is_empty_or_a_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        ResultStore("")
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        ResultStore(f)
    assert f.read_text() == "x"


def test_store_never_chmods_an_existing_directory(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    ResultStore(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    ResultStore(tmp_path / "new")
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def _bundle_with(tmp_path, record: dict) -> Path:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": "lthvp-bundle", "version": 1, "count": 1}))
        z.writestr(f"results/{record['hash']}.json", json.dumps(record))
    return path


@pytest.mark.parametrize("change", [{"dataset": 123}, {"seed": "abc"}, {"lr": 0.0}, {"epochs": -5}])
def test_poisoned_config_with_recomputed_hash_is_rejected(tmp_path, change):
    rec = make_record(3, with_prompt=False)
    rec["config"] = {**rec["config"], **change}
    rec["hash"] = "0123456789abcdef"  # whatever hash the attacker computes: the config itself is invalid
    store = ResultStore(tmp_path / "s")
    before = (store.version, store.hashes())
    with pytest.raises(BundleError, match="invalid config"):
        store.import_bundle(_bundle_with(tmp_path, rec))
    assert (store.version, store.hashes()) == before


def test_the_v1_fixture_still_passes_validation():
    assert len(read_bundle(Path(__file__).parent / "fixtures" / "mini_digits_v1.zip")) == 294


# --- the hostile-input corpus: every case is a clean rejection and the store is unchanged ---------

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def populated(tmp_path):
    s = ResultStore(tmp_path / "store")
    s.put(make_record(100))
    return s


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _manifest():
    return ("manifest.json", json.dumps({"format": "lthvp-bundle", "version": 1}))


def _forged_hash(config: dict) -> str:
    """What an attacker computes: RunConfig's hash rule applied to the raw (invalid) config."""
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    ident = {k: v for k, v in config.items() if k in V1_FIELDS or v != defaults[k]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]



def _png_header_bomb(width, height) -> bytes:
    """A real grayscale PNG of width x height zero pixels, streamed so no big array exists:
    a few hundred KB that would decode to width * height bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp, row, parts = zlib.compressobj(9), bytes(width + 1), []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [12000, 4000, 513])
def test_image_bomb_prompt_is_rejected_before_decoding(populated, tmp_path, side):
    rec = make_record(1)
    members = bundle_members(rec)
    bomb = _png_header_bomb(side, side)
    assert len(bomb) < 200_000
    members[0] = (members[0][0], bomb)
    path = _zip(tmp_path / "bomb.zip", [_manifest(), *members])
    import_rejected(populated, path, f"results/{rec['hash']}.json", "prompt_png", f"{side}x{side}")
    with pytest.raises(RecordError, match="pixels"):  # the same limit at put()
        populated.put({**rec, "prompt_png": base64.b64encode(bomb).decode()})


def test_prompt_png_is_reencoded_never_stored_as_received(populated, tmp_path):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("payload", "x" * 5000)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, format="PNG", pnginfo=info)
    received = buf.getvalue() + b"trailing bytes after IEND"
    rec = make_record(2, with_prompt=False)
    rec["prompt_png"] = base64.b64encode(received).decode()
    populated.put(rec)
    stored = base64.b64decode(populated.get(rec["hash"])["prompt_png"])
    assert stored != received and b"payload" not in stored and b"trailing" not in stored
    assert Image.open(io.BytesIO(stored)).getpixel((3, 3)) == (10, 20, 30)


@pytest.mark.parametrize("change,field", [({"dataset": 123}, "dataset"), ({"seed": "abc"}, "seed"),
                                          ({"level": True}, "level"), ({"shots": 2.5}, "shots"),
                                          ({"val_per_class": 0}, "val_per_class"), ({"preset": "../x"}, "preset"),
                                          ({"level": 10 ** 6}, "level")])
def test_poisoned_config_with_a_correctly_recomputed_hash(populated, tmp_path, change, field):
    rec = make_record(3, with_prompt=False)
    rec["config"] = {**rec["config"], **change}
    rec["hash"] = _forged_hash(rec["config"])
    path = _zip(tmp_path / "p.zip", [_manifest(), *bundle_members(rec)])
    import_rejected(populated, path, f"results/{rec['hash']}.json", "invalid config", field)
    with pytest.raises(RecordError, match="invalid config"):
        populated.put(rec)


def test_non_canonical_config_is_rejected(populated, tmp_path):
    rec = make_record(4, with_prompt=False)
    rec["config"]["shots"] = "5"  # hashes like 5, but the table would show something else than was hashed
    import_rejected(populated, _zip(tmp_path / "c.zip", [_manifest(), *bundle_members(rec)]), "config.shots", "canonical")


@pytest.mark.parametrize("path_,value,needle", [
    ("metrics.accuracy", 1e308, "metrics.accuracy"), ("metrics.ece", -0.1, "metrics.ece"),
    ("metrics.brier", 2.5, "metrics.brier"), ("metrics.nll", 1e5, "metrics.nll"),
    ("metrics.accuracy", "0.9", "metrics.accuracy"), ("metrics.accuracy", True, "metrics.accuracy"),
    ("remaining_fraction", 1.5, "remaining_fraction"), ("best_epoch", -1, "best_epoch"),
    ("ticket", "t" * 10_000, "ticket"), ("classes", ["c" * 1000], "classes[0]"),
    ("curves", [{"epoch": 1}] * 10_001, "curves"), ("mapping_history", [[0]] * 10_001, "mapping_history"),
    ("curves", [{"epoch": "one"}], "curves[0].epoch"), ("reliability.count", [1, 2], "reliability"),
    ("provenance", {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, "provenance"),
    ("scaled", {"temperature": -1.0, "accuracy": 0.5, "ece": 0.1, "mce": 0.1, "nll": 1.0, "brier": 0.5}, "scaled"),
    ("predictions", {"test": {"dtype": "float16", "shape": [2, 2], "data": "AAAA"}}, "predictions.test"),
    ("predictions", {"test": {"dtype": "float64", "shape": [1, 1], "data": ""}}, "predictions.test"),
])
def test_bad_values_name_the_member_and_the_field(populated, tmp_path, path_, value, needle):
    rec = json.loads(json.dumps(make_record(5, with_prompt=False)))
    *parents, last = path_.split(".")
    target = rec
    for p in parents:
        target = target[p]
    target[last] = value
    member = f"results/{rec['hash']}.json"
    import_rejected(populated, _zip(tmp_path / "v.zip", [_manifest(), (member, json.dumps(rec))]), member, needle)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_literals_are_rejected(populated, tmp_path, literal):
    rec = make_record(6, with_prompt=False)
    text = json.dumps(rec).replace(f'"ece": {json.dumps(rec["metrics"]["ece"])}', f'"ece": {literal}')
    assert literal in text
    import_rejected(populated, _zip(tmp_path / "n.zip", [_manifest(), (f"results/{rec['hash']}.json", text)]), "metrics.ece")


def test_unknown_keys_are_rejected_by_name_never_merged(populated, tmp_path):
    rec = make_record(7, with_prompt=False)
    inner = json.loads(json.dumps(rec))
    inner["metrics"]["hash"] = "0" * 16  # would overwrite the row's hash column
    import_rejected(populated, _zip(tmp_path / "m.zip", [_manifest(), *bundle_members(inner)]), "metrics", "'hash'")
    top = {**rec, "evil_column": 1}
    import_rejected(populated, _zip(tmp_path / "t.zip", [_manifest(), *bundle_members(top)]), "'evil_column'")
    with pytest.raises(RecordError, match="evil_column"):
        populated.put(top)
    assert "evil_column" not in populated.table().columns


@pytest.mark.parametrize("manifest", ["[]", "null", "[1, 2]", '"lthvp-bundle"', "7"])
def test_manifest_that_is_not_an_object(populated, tmp_path, manifest):
    rec = make_record(8)
    import_rejected(populated, _zip(tmp_path / "mf.zip", [("manifest.json", manifest), *bundle_members(rec)]), "manifest")


@pytest.mark.parametrize("where", ["manifest.json", "results/deep.json"])
def test_deeply_nested_json(populated, tmp_path, where):
    deep = "[" * 200_000 + "]" * 200_000
    members = [_manifest(), *bundle_members(make_record(9))]
    members = [(n, deep if n == where else d) for n, d in members] + ([(where, deep)] if where.startswith("results/")
                                                                       else [])
    import_rejected(populated, _zip(tmp_path / "deep.zip", members), where, "nested too deeply")


def _patch_member(path: Path, name: str, patch) -> Path:
    """Apply ``patch(data, header_offset, is_local_header)`` to both zip headers of ``name``."""
    data = bytearray(path.read_bytes())
    for sig, name_len_at, header_len in ((b"PK\x03\x04", 26, 30), (b"PK\x01\x02", 28, 46)):
        pos = data.find(sig)
        while pos != -1:
            n = struct.unpack_from("<H", data, pos + name_len_at)[0]
            if bytes(data[pos + header_len:pos + header_len + n]) == name.encode():
                patch(data, pos, sig == b"PK\x03\x04")
            pos = data.find(sig, pos + 4)
    path.write_bytes(bytes(data))
    return path


def _flip_data(data, pos, local):  # zlib.error
    if local:
        n, extra = struct.unpack_from("<HH", data, pos + 26)
        for i in range(pos + 30 + n + extra, pos + 38 + n + extra):
            data[i] ^= 0xFF


def _method_99(data, pos, local):  # NotImplementedError
    struct.pack_into("<H", data, pos + (8 if local else 10), 99)


def _encrypted(data, pos, local):  # RuntimeError
    at = pos + (6 if local else 8)
    struct.pack_into("<H", data, at, struct.unpack_from("<H", data, at)[0] | 1)


def _overrun(data, pos, local):  # EOFError (stored member claiming more bytes than the file holds)
    struct.pack_into("<II", data, pos + (18 if local else 20), 100_000, 100_000)


def _bad_crc(data, pos, local):  # BadZipFile
    struct.pack_into("<I", data, pos + (14 if local else 16), 12345)


@pytest.mark.parametrize("patch,stored", [(_flip_data, False), (_method_99, False), (_encrypted, False),
                                          (_overrun, True), (_bad_crc, False)])
def test_corrupt_zipbundle_members(populated, tmp_path, patch, stored):
    rec = make_record(10, with_prompt=False)
    member = f"results/{rec['hash']}.json"
    body = json.dumps({**rec, "curves": [{"epoch": i, "val_acc": 0.5} for i in range(200)]})
    path = _zip(tmp_path / "corrupt.zip", [_manifest(), (member, body)],
                compression=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    import_rejected(populated, _patch_member(path, member, patch), member, "corrupt zip member")


def test_oversize_record_and_bundle(populated, tmp_path, monkeypatch):
    rec = make_record(11, with_prompt=False)
    big = {**rec, "classes": ["c" * 200] * 11_000}  # every entry valid, 2.2 MB in all
    member = f"results/{rec['hash']}.json"
    import_rejected(populated, _zip(tmp_path / "big.zip", [_manifest(), (member, json.dumps(big))]), member, "too large")
    with pytest.raises(RecordError, match="too large"):
        populated.put(big)
    monkeypatch.setattr(store_mod, "MAX_EXPANDED_BYTES", 5_000)  # the whole-bundle limit, on what really expands
    many = [make_record(20 + i, with_prompt=False) for i in range(8)]
    members = [_manifest()] + [m for r in many for m in bundle_members(r)]
    import_rejected(populated, _zip(tmp_path / "many.zip", members), "in total")


@pytest.mark.release
def test_v1_fixture_and_shipped_bundle_import_with_every_value_unchanged(tmp_path):
    from lthvp.results.record_schema import FIELDS

    # the retired v1 study (294 results) and the shipped v2 study (1,260)
    for bundle, count in ((Path(__file__).parent / "fixtures" / "mini_digits_v1.zip", 294),
                          (REPO / "cache" / "mini_digits.zip", 1260)):
        if not bundle.exists():
            continue
        with zipfile.ZipFile(bundle) as zf:
            raw = {}
            for n in zf.namelist():
                if n.startswith("results/"):
                    r = json.loads(zf.read(n))
                    if "prompt" in r:
                        r["prompt_png"] = base64.b64encode(zf.read(r.pop("prompt"))).decode()
                    raw[r["hash"]] = r
        s = ResultStore(tmp_path / bundle.stem)
        assert s.import_bundle(bundle) == len(raw) == count
        # every value as it was; the store keeps RunRecord's JSON form, where an absent field reads as null
        given = {h: {k: v for k, v in r.items() if v is not None} for h, r in raw.items()}
        assert all({k: v for k, v in s.get(h).items() if v is not None} == given[h] for h in raw)
        assert all(s.get(h).keys() == set(FIELDS) for h in raw)
        assert s.check() == []


# --- the store on disk --------------------------------------------------------------------------

def test_corrupt_or_empty_cache_db_gives_the_recovery_command(tmp_path, capsys):
    from lthvp.commands import store_admin

    bad = tmp_path / "bad"
    ResultStore(bad).put(make_record(30))
    (bad / "cache.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as exc:
        ResultStore(bad)
    message = str(exc.value)
    assert "\n" not in message and "python -m lthvp store check" in message and "store delete" in message
    assert main(["run", "--method", "lp", "--store", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "store check" in err and "Traceback" not in err
    assert store_admin.check(bad) == 2 and "move it aside" in capsys.readouterr().err

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "cache.db").write_bytes(b"")
    os.utime(empty / "cache.db", (time.time() - 3600, time.time() - 3600))
    with pytest.raises(StoreError, match="0 bytes.*store check"):
        ResultStore(empty)
    assert (empty / "cache.db").stat().st_size == 0  # left as found
    fresh = tmp_path / "fresh"  # a 0-byte file just created is another process opening a new store
    fresh.mkdir()
    (fresh / "cache.db").write_bytes(b"")
    assert len(ResultStore(fresh)) == 0


def test_delete_and_check(tmp_path, capsys):
    from lthvp.compute.jobs import DONE, JobQueue
    from lthvp.commands import store_admin

    s = ResultStore(tmp_path / "s")
    a, b = make_record(40), make_record(41, method="lp")
    s.put(a)
    s.put(b)
    assert s.check() == []
    v = s.version
    assert s.delete([a["hash"], "f" * 16]) == [a["hash"]]
    assert s.hashes() == [b["hash"]] and s.version == v + 1 and list(s.table()["hash"]) == [b["hash"]]
    assert "deleted" in json.loads(s.cache[f"deleted:{a['hash']}"])
    assert s.delete([a["hash"]]) == [] and s.version == v + 1

    # a record written before validation existed (straight into the cache) is found and removed
    poisoned = json.loads(json.dumps(make_record(42, with_prompt=False)))
    poisoned["metrics"]["accuracy"] = 7.0
    s.cache.set(f"result:{poisoned['hash']}", json.dumps(poisoned))
    s.cache.set(f"row:{poisoned['hash']}", json.dumps({"hash": poisoned["hash"]}))
    assert s.check() == [poisoned["hash"]] and "metrics.accuracy" in s.problems()[poisoned["hash"]]
    queue = JobQueue.for_store(s.directory)
    sub = queue.submit(RunConfig.from_dict(poisoned["config"]))
    job = queue.claim("w")
    queue.finish(job["id"], "w", DONE)
    assert store_admin.check(s.directory) == 1
    out = capsys.readouterr().out
    assert f"bad {poisoned['hash']}" in out and "store delete" in out
    assert store_admin.delete([poisoned["hash"]], s.directory) == 0
    assert queue.get(sub.job_id) is None  # the finished job goes too: the run can be submitted again
    assert store_admin.check(s.directory) == 0 and s.hashes() == [b["hash"]]
    assert store_admin.delete(["not-a-hash"], s.directory) == 2
    assert store_admin.delete(["e" * 16], s.directory) == 1


# --- the worker ---------------------------------------------------------------------------------

def test_worker_loop_rejects_a_non_positive_poll(tmp_path):
    from lthvp.compute.jobs import JobQueue
    from lthvp.compute.worker import Worker

    w = Worker(JobQueue.for_store(tmp_path / "s"), ResultStore(tmp_path / "s"), log=lambda m: None)
    for bad in (0, -1, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="seconds > 0"):
            w.loop(once=True, poll=bad)


TERM_SCRIPT = """
import sys, time
from lthvp.compute.jobs import JobQueue
from lthvp.compute.worker import Worker, install_stop_handler
from lthvp.results.store import ResultStore
store_dir = sys.argv[1]
def run(config, store, progress=None):
    progress({"epoch": 1, "epochs": 100})
    time.sleep(60)
w = Worker(JobQueue.for_store(store_dir), ResultStore(store_dir), runner=run, log=lambda m: None)
install_stop_handler(w)
n = w.loop(poll=0.05)
print("clean exit", n)
"""


def test_sigterm_puts_the_running_job_back_in_the_queue(tmp_path):
    from lthvp.compute.jobs import QUEUED, RUNNING, JobQueue

    store_dir = tmp_path / "s"
    ResultStore(store_dir)
    queue = JobQueue.for_store(store_dir)
    sub = queue.submit(RunConfig(method="lp", epochs=1, seed=3))
    proc = subprocess.Popen([sys.executable, "-c", TERM_SCRIPT, str(store_dir)], stdout=subprocess.PIPE,
                            env=dict(os.environ), start_new_session=True)
    try:
        deadline = time.time() + 30
        while (queue.get(sub.job_id)["state"] != RUNNING or not queue.get(sub.job_id)["progress"]) \
                and time.time() < deadline:
            time.sleep(0.05)
        assert queue.get(sub.job_id)["state"] == RUNNING
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and b"clean exit 0" in out
    job = queue.get(sub.job_id)
    assert job["state"] == QUEUED and job["worker"] is None and "stopped" in job["requeued"]
    assert queue.workers() == [] and queue.claim("next")["id"] == sub.job_id


# --- the dashboard ------------------------------------------------------------------------------

def test_user_text_on_the_run_page_is_escaped():
    from lthvp.ui.text import PUNCTUATION, plain

    assert "from lthvp.ui.text import plain" in (REPO / "pages" / "run.py").read_text()
    hostile = "![x](http://evil/p.png) [a](javascript:alert(1)) **b** <b>c</b> :red[d] $x$ `e`\n# h"
    shown = plain(hostile, limit=200)
    assert "\n" not in shown
    for i, ch in enumerate(shown):
        if ch in PUNCTUATION and ch != "\\":
            assert shown[i - 1] == "\\", (i, shown)
    assert shown.replace("\\", "") == " ".join(hostile.split()).replace("\\", "")
    assert len(plain("x" * 1000)) == 64


def test_corrupt_job_queue_is_one_line_and_results_stay_readable(tmp_path, capsys, monkeypatch):
    """A damaged jobs/cache.db: the worker exits 2 with the recovery step; the Run page says so in
    one line and the result pages still render; a damaged store is one line on every page."""
    from streamlit import cache_data, cache_resource
    from streamlit.testing.v1 import AppTest

    from lthvp.compute.jobs import JobQueue, QueueError, jobs_dir

    (tmp_path / "no_bundles").mkdir()
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "no_bundles"))  # this store holds exactly one result
    directory = tmp_path / "store"
    ResultStore(directory).put(make_record(31))
    JobQueue.for_store(directory)
    (jobs_dir(directory) / "cache.db").write_bytes(b"not a database" * 100)
    with pytest.raises(QueueError, match="jobs are disposable") as exc:
        JobQueue.for_store(directory)
    assert "\n" not in str(exc.value)
    assert main(["worker", "--once", "--store", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "job queue" in err and "move" in err and "Traceback" not in err

    old = {k: os.environ.get(k) for k in ("LTHVP_STORE", "LTHVP_AUTOSTART_WORKER")}
    os.environ.update(LTHVP_STORE=str(directory), LTHVP_AUTOSTART_WORKER="0")
    cache_data.clear()
    cache_resource.clear()
    try:
        for page in ("pages/overview.py", "pages/run.py"):
            at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
            at.switch_page(page)
            at.run()
            assert not at.exception, [e.message for e in at.exception]
            errors = [e.value for e in at.error]
            if page == "pages/run.py":  # submitting needs the queue: the page says why it cannot
                assert len(errors) == 1 and "jobs are disposable" in errors[0] and "\n" not in errors[0], errors
            else:  # the results stay readable
                assert at.metric and int({m.label: m.value for m in at.metric}["runs"]) == 1
        (directory / "cache.db").write_bytes(b"not a database either" * 100)  # now the store itself
        cache_resource.clear()
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
        assert not at.exception and any("store check" in e.value for e in at.error)
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        cache_data.clear()
        cache_resource.clear()


def test_store_repair(tmp_path, capsys):
    """repair deletes results that fail today's schema (recorded), and rebuilds a store whose
    cache.db is unreadable from the value files still beside it, keeping the damaged file aside."""
    import numpy as np

    from lthvp.commands import store_admin
    from lthvp.results.metrics import evaluate
    from lthvp.results.predictions import encode_probs

    directory = tmp_path / "store"
    s = ResultStore(directory)
    small = make_record(40)
    large = make_record(41)  # predictions push it over diskcache's 32 KB: kept as a value file
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=2000)
    large["predictions"] = {"test": encode_probs(probs)}  # the bins describe the same 2,000 test samples
    large["reliability"] = evaluate(probs, np.random.default_rng(1).integers(0, 10, size=2000))["reliability"]
    s.put(small)
    s.put(large)
    assert store_admin.repair(directory) == 0 and "nothing to repair" in capsys.readouterr().out
    bad = {**make_record(42), "metrics": {**small["metrics"], "accuracy": 2.0}}
    s.cache.set(f"result:{bad['hash']}", json.dumps(bad))  # written past the schema, as an old version might have
    assert store_admin.repair(directory) == 0
    after = ResultStore(directory)
    assert bad["hash"] in capsys.readouterr().out and after.hashes() == sorted([small["hash"], large["hash"]])

    import gc

    s.cache.close()
    after.cache.close()  # the app and the workers are stopped before a repair
    del s, after
    gc.collect()
    (directory / "cache.db").write_bytes(b"garbage" * 1000)
    assert main(["store", "repair", "--store", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "recovered 1 result" in out and "cache.db.broken-" in out
    again = ResultStore(directory)
    assert again.hashes() == [large["hash"]] and again.get(large["hash"])["predictions"] == large["predictions"]
    assert list(directory.glob("cache.db.broken-*")) and store_admin.check(directory) == 0


def test_repair_refuses_while_workers_run_and_frees_lost_jobs(tmp_path, capsys):
    import gc

    from lthvp.compute.jobs import JobQueue
    from lthvp.commands import store_admin

    directory = tmp_path / "store"
    s = ResultStore(directory)
    rec = make_record(60)
    s.put(rec)
    queue = JobQueue.for_store(directory)
    queue.register_worker("w1")
    assert store_admin.repair(directory) == 2 and "stop them" in capsys.readouterr().err
    queue.unregister_worker("w1")
    job = queue.submit(RunConfig.from_dict(rec["config"]), user="u")  # a finished job whose result gets lost
    claimed = queue.claim("w2")
    queue.finish(claimed["id"], "w2", "done")
    s.cache.close()
    del s
    gc.collect()
    (directory / "cache.db").write_bytes(b"garbage" * 1000)
    assert store_admin.repair(directory) == 0
    assert "forgot 1 finished job" in capsys.readouterr().out
    assert queue.get(job.job_id) is None  # it can be submitted and trained again
