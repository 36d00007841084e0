"""Bad settings and hostile inputs end in a clear one-line rejection and change nothing."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import zipfile
from pathlib import Path

import pytest

from lthvp.cli import main
from lthvp.config import RunConfig
from lthvp.store import BundleError, ResultStore, read_bundle

sys.path.insert(0, str(Path(__file__).parent))
from test_store import make_record  # noqa: E402


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
