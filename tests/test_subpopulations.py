"""Per-class effects, pruning-identified exemplars and the Subpopulations page, on synthetic records
whose answers are known by construction (a class that sparsity breaks, hand-computed exemplar sets,
ties in the modal prediction), plus the shipped bundle's predictions against the real test labels."""

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers import REPO, SHIPPED, make_record
from lthvp.analysis import subpop_report as R
from lthvp.analysis import subpopulations as S
from lthvp.results.predictions import encode_probs
from lthvp.results.record_schema import flat_row

K = 10
PLANTED, TO = 3, 5  # sparsity (VP, level 4) sends images of class 3 to class 5
BROKEN = {0: 0.60, 1: 0.65, 2: 0.70}  # the share of class-3 images broken, per family (the same for every seed)


def probs_for(pred: np.ndarray, k: int = K, top: float = 0.9) -> np.ndarray:
    """``top`` on each image's predicted class, the rest spread evenly."""
    out = np.full((len(pred), k), (1 - top) / (k - 1))
    out[np.arange(len(pred)), pred] = top
    return out


def record(method, level, family, seed, probs, classes=None, labels=None, **config):
    """A planted run; with ``labels`` its metrics, bins and per-class accuracy are recomputed from
    ``probs`` so the whole record is consistent (the store's validator checks that)."""
    rec = make_record(seed, method=method, level=level, family=family, shots="full", dataset="digits", **config)
    rec["predictions"] = {"test": encode_probs(probs), "val": None, "val_labels": None}
    rec["classes"] = classes
    if labels is not None:
        from lthvp.results.metrics import evaluate

        m = evaluate(probs, labels)
        rec.update(metrics={k: m[k] for k in ("accuracy", "ece", "mce", "nll", "brier")}, reliability=m["reliability"],
                   per_class_accuracy=m["per_class_accuracy"], n_test=m["n"])
    return rec


def planted_records(labels: np.ndarray, families=(0, 1, 2), seeds=(0, 1, 2), classes=None) -> list[dict]:
    """VP and LP, dense and level 4. Dense predicts every image right, except one image of each
    other class in some runs; level 4 breaks one image of each other class in the other runs (so
    those classes change by about 0, with spread), and for VP only, BROKEN[family] of class 3."""
    recs = []
    members = {c: np.flatnonzero(labels == c) for c in range(K)}
    for f in families:
        for s in seeds:
            for method in ("vp", "lp"):
                for level in (0, 4):
                    pred = labels.copy()
                    if (f + s + (level == 4)) % 2:  # noise: one image of every other class
                        for c in range(K):
                            if c != PLANTED:
                                pred[members[c][(s + f) % len(members[c])]] = (c + 1) % K
                    if method == "vp" and level == 4:
                        idx = np.roll(members[PLANTED], s)  # each seed its own images, the same count
                        pred[idx[:int(round(BROKEN[f] * len(idx)))]] = TO
                    recs.append(record(method, level, f, s, probs_for(pred), classes, labels))
    return recs


def table_of(recs):
    return pd.DataFrame([flat_row(r) for r in recs])


def by_hash(recs):
    return {r["hash"]: r for r in recs}


@pytest.fixture(scope="module")
def synthetic():
    labels = np.repeat(np.arange(K), 20)
    recs = planted_records(labels)
    runs = S.select_runs(table_of(recs), "digits", "full", ["vp", "lp"], [4])
    runs, probs = S.stack(runs, by_hash(recs))
    return labels, recs, runs, probs


def test_a_planted_class_that_sparsity_breaks_is_found_with_its_sign_and_interval(synthetic):
    labels, _, runs, probs = synthetic
    out = S.per_class_effects(runs, probs, labels, [f"c{i}" for i in range(K)], "accuracy")
    vp = out[(out["method"] == "vp") & (out["level"] == 4)].set_index("class")
    row = vp.loc[PLANTED]
    # the planted drop is the same for every seed of a family, so the crossed model's seed and
    # residual components are 0 and its interval is the t-interval over the three family means
    units = -np.array(list(BROKEN.values()))
    half = stats.t.ppf(0.975, 2) * units.std(ddof=1) / np.sqrt(3)
    assert row["estimate"] == pytest.approx(units.mean(), abs=1e-9)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((units.mean() - half, units.mean() + half), abs=1e-9)
    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(units.mean()) / (units.std(ddof=1) / np.sqrt(3)), 2))
    assert row["p_holm"] == pytest.approx(min(1.0, K * row["p"]))  # the smallest of 10 classes: x10
    assert row["p_holm"] < 0.05 and row["ci_high"] < 0
    assert (row["ci_low_fm"], row["ci_high_fm"]) == pytest.approx((row["ci_low"], row["ci_high"]), abs=1e-9)
    assert (row["unit"], row["n_units"], row["n_pairs"], row["class_name"]) == ("family x seed", 3, 9, "c3")
    assert row["dense"] == pytest.approx(1.0) and row["sparse"] == pytest.approx(1 + units.mean())
    others = vp.drop(index=PLANTED)
    assert (others["p_holm"] > 0.05).all() and ((others["ci_low"] <= 0) & (others["ci_high"] >= 0)).all()
    lp = out[out["method"] == "lp"].set_index("class")
    assert lp.loc[PLANTED, "estimate"] == 0 and lp.loc[PLANTED, "p_holm"] == 1
    diff = out[out["method"] == "vp-lp"].set_index("class").loc[PLANTED]
    assert diff["estimate"] == pytest.approx(units.mean()) and diff["p_holm"] < 0.05
    assert list(dict.fromkeys(out["method"])) == ["vp", "lp", "vp-lp"]


def test_one_family_makes_the_seeds_the_unit(synthetic):
    labels, recs, _, _ = synthetic
    one = [r for r in recs if r["config"]["family"] == 1]
    runs, probs = S.stack(S.select_runs(table_of(one), "digits", "full", ["vp"], [4]), by_hash(one))
    row = S.per_class_effects(runs, probs, labels).set_index("class").loc[PLANTED]
    assert (row["unit"], row["n_units"]) == ("seed", 3)
    assert row["estimate"] == pytest.approx(-BROKEN[1]) and row["ci_low"] == row["ci_high"] == pytest.approx(-BROKEN[1])


def test_class_metrics_equal_the_metrics_module_on_each_class():
    from lthvp.results.metrics import expected_calibration_error, per_class_accuracy

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=60)
    labels[labels == 3] = 2  # class 3 has no test image: NaN, not 0
    probs = rng.dirichlet(np.ones(4) * 0.5, size=(5, 60))
    probs[0, :5] = [1.0, 0, 0, 0]  # confidence exactly 1 (the last bin's upper edge)
    got = S.class_metrics(probs, labels)
    for r in range(5):
        assert np.allclose(got["accuracy"][r, :3], per_class_accuracy(probs[r], labels)[:3])
        for c in range(3):
            members = labels == c
            assert got["ece"][r, c] == pytest.approx(expected_calibration_error(probs[r][members], labels[members]))
    assert np.isnan(got["accuracy"][:, 3]).all() and np.isnan(got["ece"][:, 3]).all()


# --- exemplars: a hand-computed case -----------------------------------------------------------------
LABELS = np.array([0, 1, 2, 0, 1, 2, 0])
DENSE = [[0, 1, 2, 0, 1, 1, 1], [0, 1, 2, 0, 2, 1, 1], [0, 1, 2, 1, 1, 2, 0]]  # per seed: top-1 per image
SPARSE = [[0, 2, 2, 1, 1, 2, 0], [0, 2, 2, 1, 0, 0, 0], [0, 1, 2, 1, 2, 0, 0]]
# image 4 at the sparse level: one vote each for 1, 0, 2; class 1 has the highest mean probability
TIED = [[0.05, 0.90, 0.05], [0.40, 0.35, 0.25], [0.10, 0.40, 0.50]]


def hand_records():
    recs = []
    for seed in range(3):
        for level, preds in ((0, DENSE), (4, SPARSE)):
            p = probs_for(np.array(preds[seed]), k=3, top=0.8)
            if level == 4:
                p[4] = TIED[seed]
            recs.append(record("vp", level, 0, seed, p, ["zero", "one", "two"]))
    return recs


def test_exemplars_equal_the_hand_computed_set():
    recs = hand_records()
    runs, probs = S.stack(S.select_runs(table_of(recs), "digits", "full", ["vp"], [4]), by_hash(recs))
    images, summary = S.exemplars(runs, probs, LABELS, "vp", 4)
    # dense modal: 0 1 2 0 1 1 1; sparse modal: 0 2 2 1 [tie -> 1] 0 0
    assert list(images["dense_pred"]) == [0, 1, 2, 0, 1, 1, 1]
    assert list(images["sparse_pred"]) == [0, 2, 2, 1, 1, 0, 0]
    ex = images[images["exemplar"]].set_index("image")
    assert list(ex.index) == [1, 3, 5, 6]
    assert dict(ex["kind"]) == {1: "broken", 3: "broken", 5: "hard", 6: "fixed"}
    assert list(images["dense_share"].round(4)) == [1, 1, 1, 0.6667, 0.6667, 0.6667, 0.6667]
    assert ex.loc[3, "sparse_share"] == 1 and ex.loc[1, "sparse_share"] == pytest.approx(2 / 3)
    # true-class probability: 0.8 where a run is right, 0.1 where it is wrong (float16-stored)
    assert ex.loc[1, "shift"] == pytest.approx((0.1 + 0.1 + 0.8) / 3 - 0.8, abs=2e-3)
    assert ex.loc[6, "shift"] == pytest.approx(0.8 - (0.1 + 0.1 + 0.8) / 3, abs=2e-3)
    assert summary["shift_exemplars"] == pytest.approx(ex["shift"].mean())
    assert (summary["n_exemplars"], summary["n_test"], summary["n_pairs"]) == (4, 7, 3)
    assert (summary["n_broken"], summary["n_fixed"], summary["n_hard"], summary["n_dense_wrong"]) == (2, 1, 1, 2)
    from statsmodels.stats.proportion import proportion_confint

    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx(proportion_confint(4, 7, method="wilson"))
    assert list(S.gallery_order(images)["image"]) == [3, 6, 1, 5]  # sparse share 1, 1, 2/3, 2/3; then dense share


def test_exemplars_pair_runs_within_family_and_seed():
    """A dense run without its sparse partner (and vice versa) does not vote."""
    recs = hand_records() + [record("vp", 0, 0, 7, probs_for(np.array([2, 2, 0, 2, 2, 0, 2]), k=3))]
    runs, probs = S.stack(S.select_runs(table_of(recs), "digits", "full", ["vp"], [4]), by_hash(recs))
    images, summary = S.exemplars(runs, probs, LABELS, "vp", 4)
    assert summary["n_pairs"] == 3 and list(images.loc[images["exemplar"], "image"]) == [1, 3, 5, 6]


def test_the_run_to_run_reference_compares_halves_of_the_pairs():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=30)
    dense = np.stack([probs_for(labels, k=3) for _ in range(6)])
    broken = labels.copy()
    broken[:7] = (labels[:7] + 1) % 3  # every sparse run breaks the same 7 images
    sparse = np.stack([probs_for(broken, k=3) for _ in range(6)])
    assert S.split_half(dense, sparse) == {"dense_dense": 0, "sparse_sparse": 0, "dense_sparse": 7}
    noisy = dense.copy()
    noisy[:3, 10] = probs_for(np.array([(labels[10] + 1) % 3]), k=3)  # image 10: 3 of 6 dense runs disagree
    half = S.split_half(noisy, sparse)
    # halves of 3 pairs: whichever half holds 2 or 3 of the disagreeing runs calls image 10 wrong and
    # the other half right, so the dense halves always differ on it; image 10 is not a planted one
    assert half == {"dense_dense": 1, "sparse_sparse": 0, "dense_sparse": pytest.approx(7.5)}
    assert np.isnan(S.split_half(dense[:1], sparse[:1])["dense_dense"])


def test_ties_in_the_modal_prediction_follow_the_documented_rule():
    # votes 1-1-1: the highest mean probability wins, not the smallest index
    modal, share = S.modal_prediction(np.array(TIED)[:, None, :])
    assert modal[0] == 1 and share[0] == pytest.approx(1 / 3)
    # votes and mean probability tie exactly: the smallest index among the tied (1, not 0 or 2)
    runs = np.array([[[0.0, 0.4, 0.6]], [[0.0, 0.6, 0.4]]])
    assert S.modal_prediction(runs)[0][0] == 1
    # more votes beat a higher mean probability
    runs = np.array([[[0.4, 0.3, 0.3]], [[0.4, 0.3, 0.3]], [[0.0, 1.0, 0.0]]])
    assert runs.mean(0)[0].argmax() == 1 and S.modal_prediction(runs)[0][0] == 0


def test_overlap_and_wilson():
    assert S.overlap([1, 2, 3, 5], [3, 5, 8]) == {"a_only": 2, "both": 2, "b_only": 1}
    assert S.wilson(0, 50)[0] == 0 and 0 < S.wilson(0, 50)[1] < 0.08
    assert np.isnan(S.wilson(0, 0)[0])


def test_analyse_reports_runs_without_predictions_and_keeps_legacy_apart(synthetic):
    labels, recs, _, _ = synthetic
    old = dict(recs[0], predictions=None)  # an older record: no per-sample predictions
    legacy = record("vp", 4, None, 0, probs_for(labels))  # the legacy study is never pooled with families
    rest = [r for r in recs if r["hash"] != old["hash"]] + [old, legacy]
    res = R.analyse(table_of(rest), by_hash(rest), labels, [str(i) for i in range(K)], "digits", "full",
                    ["vp", "lp"], 4)
    assert res["runs_without_predictions"] == 1
    assert set(res["runs"]["family"]) == {"0", "1", "2"}
    assert res["summaries"]["vp"]["n_pairs"] + res["summaries"]["lp"]["n_pairs"] == 17  # one pair lost its run
    assert res["overlap"]["both"] + res["overlap"]["a_only"] == res["summaries"]["vp"]["n_exemplars"]
    only = S.select_runs(table_of(rest), "digits", "full", ["vp"], [4], families=["legacy"])
    assert list(only["hash"]) == [legacy["hash"]]  # picked by name, the legacy study is there


def test_predictions_of_another_split_are_refused(synthetic):
    labels, _, runs, probs = synthetic
    with pytest.raises(ValueError, match="test samples"):
        S.per_class_effects(runs, probs, labels[:-1])


def test_the_readme_paragraph_is_generated_from_the_records(synthetic):
    labels, recs, _, _ = synthetic
    text = R.subpopulations_markdown(recs, "digits", labels, [str(i) for i in range(K)])
    _, s = S.exemplars(*S.stack(S.select_runs(table_of(recs), "digits", "full", ["vp"], [4]), by_hash(recs)),
                       labels, "vp", 4)
    assert f"on {s['n_exemplars']} of {len(labels)} test images for VP" in text
    assert "detected: VP class 3 -65.0 pts" in text and "VP - LP class 3 -65.0 pts" in text
    assert text.count("\n") == 1  # one paragraph
    none = R.subpopulations_markdown([dict(r, predictions=None) for r in recs], "digits", labels)
    assert "No record stores per-sample test predictions" in none


def test_the_library_imports_neither_torch_nor_streamlit():
    """Pure functions (the CLI and the README generator use them without the app; torch only inside
    test_split)."""
    import subprocess
    import sys

    code = ("import sys, lthvp.analysis.subpopulations, lthvp.analysis.subpop_report, lthvp.ui.subpop_plots; "
            "print(sorted(m for m in ('torch', 'streamlit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_shipped_predictions_line_up_with_the_test_split():
    """The stored per-class accuracy of shipped runs equals what the stored predictions and the
    dataset's test labels give (the labels are in the order the predictions use), up to the images
    whose two largest probabilities became equal in float16 (argmax then takes the smaller class)."""
    if not SHIPPED.exists():
        pytest.skip("no shipped bundle")
    _, labels, _ = S.test_split("digits")
    with zipfile.ZipFile(SHIPPED) as z:
        names = sorted(n for n in z.namelist() if n.startswith("results/"))[:40]
        recs = [json.loads(z.read(n)) for n in names]
    probs = np.stack([S.decode_probs(r["predictions"]["test"]) for r in recs])
    got = S.class_metrics(probs, labels)["accuracy"]
    stored = np.array([r["per_class_accuracy"] for r in recs], dtype=float)
    top2 = np.sort(probs, axis=-1)[..., -2:]
    tied = np.stack([np.bincount(labels, weights=t, minlength=K) for t in top2[..., 0] == top2[..., 1]])
    off = np.rint(np.abs(got - stored) * np.bincount(labels, minlength=K))
    assert (off <= tied).all() and (off == 0).mean() > 0.95


# --- the command line and the page ------------------------------------------------------------------
HOSTILE = ["[zero](http://example.com)", "**one**", "<b>two</b>", "3", "4", "5", "6", "7", "8", "9"]


@pytest.fixture(scope="module")
def digits_store(tmp_path_factory):
    """A store of planted runs over the real digits test split (the page shows its real images),
    with class names that would be markup if rendered as Markdown or plotly HTML."""
    from lthvp.results.store import ResultStore

    _, labels, _ = S.test_split("digits")
    root = tmp_path_factory.mktemp("subpop")
    old = os.environ.get("LTHVP_BUNDLES")
    os.environ["LTHVP_BUNDLES"] = str(root / "no-bundles")  # every entry point would seed the shipped bundle
    store = ResultStore(root / "store")
    for r in planted_records(labels, seeds=(0, 1), classes=HOSTILE):
        store.put(r)
    yield store, labels
    os.environ.pop("LTHVP_BUNDLES") if old is None else os.environ.__setitem__("LTHVP_BUNDLES", old)


def planted_share(labels) -> float:
    """The mean share of class-3 images broken (whole images of the real split's class)."""
    n = int((labels == PLANTED).sum())
    return float(np.mean([round(b * n) / n for b in BROKEN.values()]))


def test_cli_json(digits_store, capsys, tmp_path):
    from lthvp.commands.cli import main

    store, labels = digits_store
    csv = tmp_path / "images.csv"
    assert main(["subpopulations", "--store", str(store.directory), "--level", "4", "--json", "--csv", str(csv)]) == 0
    out = json.loads(capsys.readouterr().out)
    planted = [r for r in out["per_class"] if r["metric"] == "accuracy" and r["method"] == "vp" and r["class"] == PLANTED]
    assert planted[0]["estimate"] == pytest.approx(-planted_share(labels)) and planted[0]["p_holm"] < 0.05
    assert len(store) == 2 * 3 * 2 * 2  # nothing else was imported into it
    assert out["classes"] == HOSTILE and out["methods"] == ["vp", "lp"]
    vp = out["exemplars"]["vp"]
    assert vp["n_test"] == len(labels) and vp["n_exemplars"] == len([i for i in out["images"] if i["method"] == "vp"])
    assert out["overlap"]["vp_only"] + out["overlap"]["both"] == vp["n_exemplars"]
    table = pd.read_csv(csv)
    assert len(table) == 2 * len(labels) and {"true_name", "sparse_pred_name", "vp_and_lp"} <= set(table.columns)
    assert main(["subpopulations", "--store", str(store.directory), "--level", "3"]) == 2  # no such level


@pytest.fixture
def page_env(digits_store):
    from streamlit import cache_data, cache_resource

    store, labels = digits_store
    old = {k: os.environ.get(k) for k in ("LTHVP_STORE", "LTHVP_AUTOSTART_WORKER")}
    os.environ.update(LTHVP_STORE=str(store.directory), LTHVP_AUTOSTART_WORKER="0")
    cache_data.clear()
    cache_resource.clear()
    yield store, labels
    for k, v in old.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    cache_data.clear()
    cache_resource.clear()


def test_page_draws_the_library_numbers_from_the_url(page_env):
    from streamlit.testing.v1 import AppTest

    store, labels = page_env
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.switch_page("pages/subpopulations.py")
    for k, v in {"ds": "digits", "level": "L4", "shot": "full data", "gallery": "VP and LP", "n_images": "24",
                 "class_metric": "accuracy"}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    res = R.analyse(store.table(), store.get, labels, HOSTILE, "digits", "full", ["vp", "lp"], 4)
    venn = {m.label: int(m.value) for m in at.metric}
    assert venn == {"VP only": res["overlap"]["a_only"], "both": res["overlap"]["both"],
                    "LP only": res["overlap"]["b_only"]}
    assert at.radio(key="gallery").value == "both" and at.selectbox(key="level").value == 4
    captions = [t.value for t in at.text if t.value.startswith("#")]
    assert len(captions) == min(24, res["overlap"]["both"]) and all("VP: " in c and "LP: " in c for c in captions)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    vp = next(t for t in chart["data"] if t["name"] == "VP")
    assert vp["x"][:3] == ["[zero](http://example.com)", "**one**", "&lt;b&gt;two&lt;/b&gt;"]  # names, escaped
    assert vp["text"][PLANTED] == "*" and vp["y"][PLANTED] == pytest.approx(-100 * planted_share(labels))
    markdown = " ".join(str(m.value) for m in at.markdown) + " ".join(str(c.value) for c in at.caption)
    assert "example.com" not in markdown and "**one**" not in markdown
    assert len(at.get("imgs")) == len(captions)
    for key, value in {"ds": "digits", "level": "L4", "shot": "full data", "methods": ["VP", "LP"]}.items():
        assert at.query_params[key] == ([value] if isinstance(value, str) else value)
