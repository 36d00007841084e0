"""Studies (lthvp.results.studies): the design derived from a bundle's records, the registry kept in
the store and validated on read, registration on every kind of import (shipped, CLI), and the true
replicate counts the pages show (lthvp.analysis.replicates)."""

import json

import pandas as pd

from helpers import make_record
from lthvp.analysis import replicates
from lthvp.analysis.replication import PROTOCOL
from lthvp.results import studies
from lthvp.results.seeding import pending, seed_store
from lthvp.results.store import ResultStore


def records(families=(0, 1), seeds=(0, 1, 2), commit="abc123"):
    out = []
    for family in families:
        for seed in seeds:
            for method, level in (("lp", 0), ("lp", 2), ("vp", 2)):
                rec = make_record(seed, method=method, level=level, family=family, dataset="digits",
                                  with_prompt=False)
                out.append({**rec, "provenance": {**rec["provenance"], "git_commit": commit}})
    return out


def shipped_bundle(tmp_path, recs, name="study.zip"):
    src = ResultStore(tmp_path / f"src_{name}")
    for r in recs:
        src.put(r)
    return src.export_bundle(tmp_path / "shipped" / name, note=name)


def test_the_design_is_derived_from_the_records():
    recs = records()[:6] + records(families=(1,), seeds=(0, 1, 2), commit="def456")[:3]
    d = studies.derive_design(recs)
    assert d.runs == 9 and d.datasets == ("digits",) and d.methods == ("lp", "vp")
    assert d.families == ("0", "1") and d.levels == (0, 2) and d.seeds == (0, 1) and d.shots == ("5",)
    assert d.code_versions == (("abc123", 6), ("def456", 3))  # most runs first
    assert {(m, s) for m, s, _, _ in d.protocols} == {("lp", "5"), ("vp", "5")}
    assert all(p.startswith("preset=mini, ") for _, _, p, _ in d.protocols)
    assert sum(n for *_, n in d.protocols) == 9
    unknown = studies.derive_design([{"config": recs[0]["config"]}])  # no provenance: the commit is unknown
    assert unknown.code_versions == (("unknown", 1),)


def test_protocol_fields_match_the_replication_analysis():
    assert studies.PROTOCOL == PROTOCOL


def test_register_and_read_back_keeps_the_first_import(tmp_path):
    store = ResultStore(tmp_path / "store")
    recs = records()
    for r in recs:
        store.put(r)
    digest = "a" * 64
    study = studies.register(store, "my/../bundle.zip", digest, [r["hash"] for r in recs], "upload")
    assert study.name == "bundle.zip" and study.design.runs == len(recs) and study.members[0] == recs[0]["hash"]
    again = studies.register(store, "other.zip", digest, [recs[0]["hash"]], "cli")  # the same bundle again
    assert again == study
    found, problems = studies.studies(store)
    assert found == [study] and problems == []
    assert studies.default_study(found) == study


def test_a_deleted_member_is_described_from_the_import_report(tmp_path):
    store = ResultStore(tmp_path / "store")
    recs = records(families=(0,), seeds=(0,))
    for r in recs[1:]:
        store.put(r)
    configs = {r["hash"]: (r["config"], r["metrics"]) for r in recs}
    study = studies.register(store, "b.zip", "b" * 64, list(configs), "shipped", configs)
    assert study.design.runs == len(recs) and recs[0]["hash"] in study.members
    unknown = studies.register(store, "c.zip", "c" * 64, [recs[0]["hash"]], "shipped")  # neither stored nor reported
    assert unknown.members == () and unknown.design.runs == 0


def test_damaged_registry_entries_are_named_and_ignored(tmp_path):
    store = ResultStore(tmp_path / "store")
    recs = records(families=(0,), seeds=(0,))
    for r in recs:
        store.put(r)
    good = studies.register(store, "good.zip", "d" * 64, [r["hash"] for r in recs], "shipped")
    doc = good.to_json()
    bad = {
        "e" * 64: "{not json",
        "f" * 64: json.dumps({**doc, "digest": "f" * 64, "members": ["NOTAHASH"]}),
        "0" * 64: json.dumps({**doc, "digest": "0" * 64, "source": "elsewhere"}),
        "1" * 64: json.dumps({**doc, "digest": "1" * 64, "design": {**doc["design"], "runs": 99}}),
        "2" * 64: json.dumps(doc),  # a valid entry under another key
        "3" * 64: json.dumps({**doc, "digest": "3" * 64, "name": "evil\x1b[31m"}),
        "4" * 64: json.dumps({**doc, "digest": "4" * 64, "design": {**doc["design"], "levels": ["0"]}}),
    }
    for digest, text in bad.items():
        store.cache.set(studies.PREFIX + digest, text)
    found, problems = studies.studies(store)
    assert found == [good]
    assert len(problems) == len(bad) and all(p.startswith("study entry ") and p.endswith("; ignored") for p in problems)
    assert any("members" in p for p in problems) and any("source" in p for p in problems)
    assert any("design.runs" in p for p in problems) and any("differs from the entry's key" in p for p in problems)
    assert all("\x1b" not in p for p in problems)


def test_shipped_bundles_become_studies_with_progress_and_old_stores_are_registered_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "shipped"))
    recs = records()
    path = shipped_bundle(tmp_path, recs)
    store = ResultStore(tmp_path / "store")
    assert pending(store) == [(path, len(recs))]
    heard = []
    said = seed_store(store, progress=heard.append)
    assert said == [f"imported study.zip: {len(recs)} results added, 0 already stored or deleted here"]
    assert heard == [f"Importing {len(recs)} shipped results from study.zip…"]
    (study,), _ = studies.studies(store)
    assert study.source == "shipped" and study.digest == studies.file_digest(path)
    assert set(study.members) == {r["hash"] for r in recs} and study.design.code_versions == (("abc123", len(recs)),)
    assert pending(store) == [] and seed_store(store, progress=heard.append) == [] and len(heard) == 1

    store.cache.delete(studies.PREFIX + study.digest)  # a store seeded by a release without studies
    assert pending(store) == [(path, len(recs))]
    assert seed_store(store, progress=heard.append) == []  # nothing imported again ...
    assert studies.studies(store)[0][0].members == study.members  # ... but the study is registered
    assert heard[-1] == "Recording the design of the shipped study study.zip…"


def test_cli_import_registers_the_bundle_as_a_study(tmp_path, monkeypatch, capsys):
    from lthvp.commands.cli import main

    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "none"))
    recs = records(families=(3,), seeds=(0, 1))
    path = shipped_bundle(tmp_path, recs, name="mine.zip")
    assert main(["import", str(path), "--store", str(tmp_path / "store")]) == 0
    (study,), problems = studies.studies(ResultStore(tmp_path / "store"))
    assert problems == [] and study.source == "cli" and study.name == "mine.zip"
    assert study.design.families == ("3",) and study.design.seeds == (0, 1)


def test_replicate_counts_name_families_and_seeds_and_flag_unequal_cells():
    balanced = replicates.describe(["0"] * 5 + ["1"] * 5 + ["2"] * 5, list(range(5)) * 3)
    assert balanced["replication"] == "3 families x 5 seeds = 15 runs" and balanced["balanced"]
    extra = replicates.describe(["0"] * 6 + ["1"] * 5 + ["2"] * 5, list(range(5)) + [7] + list(range(5)) * 2)
    assert extra["replication"] == "3 families x 5-6 seeds = 16 runs; unequal replication: f0 6 seeds, f1 5, f2 5"
    assert not extra["balanced"] and extra["runs"] == 16
    swapped = replicates.describe(["0", "0", "1", "1"], [0, 1, 0, 2])  # same counts, other seeds: unbalanced
    assert not swapped["balanced"]
    twice = replicates.describe(["0", "0"], [1, 1])
    assert not twice["balanced"] and twice["replication"].endswith("1 repeated (family, seed) run")
    assert replicates.describe(["legacy"] * 3, [0, 1, 2])["replication"] == "3 seeds = 3 runs"


def test_with_replication_matches_the_aggregate_rows():
    from lthvp.analysis.report import aggregate
    from lthvp.results.record_schema import flat_row

    recs = records()
    extra = make_record(7, method="lp", level=2, family=0, dataset="digits", with_prompt=False)
    df = pd.DataFrame([flat_row(r) for r in recs + [extra]])
    agg = replicates.with_replication(aggregate(df, "accuracy"), df, "accuracy")
    assert "seeds" not in agg and len(agg) == 3
    cell = agg[(agg["method"] == "lp") & (agg["level"] == 2)].iloc[0]
    assert cell["replication"].startswith("2 families x 3-4 seeds = 7 runs") and not cell["balanced"]
    assert agg[agg["level"] == 0].iloc[0]["replication"] == "2 families x 3 seeds = 6 runs"
