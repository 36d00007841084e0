"""Command line: clear errors with exit code 2 (never a traceback), export/import."""

import os
import subprocess
import sys
import zipfile

import pytest

from lthvp.commands.cli import main
from lthvp.results.presets import REPO_ROOT


def _env(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LTHVP_DATA": str(tmp_path / "data")}
    env.pop("LTHVP_DOWNLOAD", None)
    return env


def test_missing_data_exit_code_2_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LTHVP_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("LTHVP_DOWNLOAD", raising=False)
    code = main(["run", "--dataset", "mnist", "--method", "lp", "--epochs", "1", "--json",
                 "--store", str(tmp_path / "store")])
    err = capsys.readouterr()
    assert code == 2
    last = err.err.strip().splitlines()[-1]  # earlier lines: the shipped bundles seeding the new store
    assert last.startswith("error:") and "--download" in last and str(tmp_path / "data") in err.err
    assert "Traceback" not in err.err and err.out == ""


def test_missing_data_exit_code_2_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lthvp", "run", "--dataset", "mnist", "--method", "lp",
                           "--epochs", "1", "--json", "--store", str(tmp_path / "store")],
                          cwd=REPO_ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr and "--download" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("argv,needle", [
    (["run", "--arm", "random", "--level", "0"], "random"),
    (["run", "--preset", "nope"], "preset"),
    (["run", "--level", "99", "--method", "lp", "--epochs", "1"], "level 99"),
])
def test_bad_requests_exit_code_2(tmp_path, capsys, argv, needle):
    code = main(argv + ["--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # a new store may first report the shipped bundles it imported
    assert code == 2 and last.startswith("error:") and needle in last and "Traceback" not in err


def test_argparse_rejects_unknown_method(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--method", "finetune", "--store", str(tmp_path)])
    assert exc.value.code == 2


def test_export_import_cli(tmp_path, capsys, monkeypatch):
    from lthvp.results.store import ResultStore

    from helpers import make_record

    # no shipped bundles seed these stores: the counts below are exactly this test's records
    # (seeding a new store is test_cli_serves_a_shipped_cell_from_a_fresh_store's and test_seeding's)
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "no_bundles"))
    src = ResultStore(tmp_path / "src")
    records = [make_record(7), make_record(8, method="lp")]
    for r in records:
        src.put(r)
    bundle = tmp_path / "b.zip"
    assert main(["export", str(bundle), "--store", str(src.directory)]) == 0
    assert capsys.readouterr().out.startswith("exported 2 results")
    assert main(["import", str(bundle), "--store", str(tmp_path / "dst")]) == 0
    assert capsys.readouterr().out.endswith(": 2 added, 0 already stored\n")
    dst = ResultStore(tmp_path / "dst")
    assert set(dst.hashes()) == {r["hash"] for r in records}
    assert main(["export", str(tmp_path / "lp.zip"), "--store", str(src.directory), "--dataset", "digits"]) == 0
    capsys.readouterr()
    # hostile bundle: rejected with exit 2, store unchanged
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(evil, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        zout.writestr("../escape.json", b"{}")
    before = (dst.version, dst.hashes())
    assert main(["import", str(evil), "--store", str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert "rejected" in err and "unsafe path" in err
    assert (dst.version, dst.hashes()) == before
    assert not (tmp_path / "escape.json").exists()


def test_sweep_defaults_are_the_mini_grid():
    """`python -m lthvp sweep` with no axes = digits x {vp, lp} x levels 0-8 x 5 shot settings x seed 0."""
    from lthvp.commands.cli import _configs, build_parser

    args = build_parser().parse_args(["sweep"])
    configs = _configs(args, many=True)
    assert len(configs) == 2 * 9 * 5
    assert {c.dataset for c in configs} == {"digits"}
    assert {c.method for c in configs} == {"vp", "lp"} and {c.level for c in configs} == set(range(9))
    assert {str(c.shots) for c in configs} == {"1", "2", "5", "10", "full"} and {c.seed for c in configs} == {0}


@pytest.mark.shipped
@pytest.mark.release
def test_cli_serves_a_shipped_cell_from_a_fresh_store(tmp_path, capsys):
    """One store, whichever door: the CLI seeds a new store from cache/*.zip, so a shipped cell
    is answered from the store (cached), never retrained."""
    import json as _json

    from lthvp.commands.cli import main
    from lthvp.results.store import read_bundle

    rec = next(r.to_json() for r in read_bundle(REPO_ROOT / "cache" / "mini_digits.zip")
               if r.config.method == "vp" and r.config.level == 4 and r.config.arm == "ticket")
    c = rec["config"]
    code = main(["run", "--family", str(c["family"]), "--method", "vp", "--level", "4", "--shots", str(c["shots"]),
                 "--seed", str(c["seed"]), "--steps", str(c["steps"]), "--json", "--quiet",
                 "--store", str(tmp_path / "s")])
    out = _json.loads(capsys.readouterr().out)
    assert code == 0 and out["cached"] is True and out["hash"] == rec["hash"]
    assert out["accuracy"] == rec["metrics"]["accuracy"]


def test_sweep_shards_split_every_cost_group_evenly():
    from collections import Counter

    from lthvp.commands.cli import shard
    from lthvp.results.config import RunConfig

    configs = [RunConfig(family=f, method=m, level=lv, shots=sh, seed=0)
               for f in (0, 1, 2) for m in ("vp", "map", "lp") for lv in (0, 2, 4, 6, 8) for sh in (1, 5, 10, "full")]
    parts = [shard(configs, k, 2) for k in range(2)]
    assert sorted(map(repr, parts[0] + parts[1])) == sorted(map(repr, configs))  # each config in exactly one shard
    counts = [Counter((c.method, str(c.shots)) for c in part) for part in parts]
    assert all(abs(counts[0][g] - counts[1][g]) <= 1 for g in counts[0] | counts[1])
    assert counts[0][("vp", "full")] == 8 and counts[1][("vp", "full")] == 7
