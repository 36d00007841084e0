"""Run search (lthvp.ui.run_search): the app's own words, AND across fields, OR within one,
comparisons, dates and commits, unknown words named; property-style checks over a real-shaped
table of runs."""

import itertools
import random
import subprocess
import sys

import pandas as pd
import pytest

from lthvp.ui.run_search import parse, search


def runs() -> pd.DataFrame:
    """Every (family, method, level, shots, seed) of a small grid, with dates and two commits."""
    rows = []
    grid = itertools.product([0, 1, None], ["vp", "map", "lp"], [0, 2, 8], ["1", "5", "full"], [0, 3])
    for i, (family, method, level, shots, seed) in enumerate(grid):
        rows.append({"hash": f"{i:016x}", "family": family, "dataset": "digits" if i % 4 else "fashion_mnist",
                     "method": method, "arm": "random" if i % 7 == 0 else "ticket", "level": level, "shots": shots,
                     "seed": seed, "preset": "mini", "accuracy": (i % 50) / 50, "ece": (i % 9) / 100,
                     "created": f"2026-11-{10 + i % 20:02d}T08:00:00+00:00",
                     "git_commit": ("37e11bdbef" if i % 3 else "aa01ffee02") + "0" * 30})
    return pd.DataFrame(rows)


DF = runs()


def hits(text: str) -> set[int]:
    return set(DF.index[search(text, DF).mask])


def where(cond) -> set[int]:
    return set(DF.index[cond])


@pytest.mark.parametrize("text", ["L8 seed 3", "level 8 seed 3", "l8 seed:3", "seed 3 L8", "LEVEL=8 SEED=3",
                                  "level: 8 seed = 3", "seed3 level8"])
def test_level_and_seed_in_any_spelling_and_order(text):
    assert hits(text) == where((DF["level"] == 8) & (DF["seed"] == 3))
    assert search(text, DF).notice is None


@pytest.mark.parametrize("text, cond", [
    ("family 0", lambda d: d["family"] == 0), ("f1", lambda d: d["family"] == 1),
    ("legacy", lambda d: d["family"].isna()), ("vp", lambda d: d["method"] == "vp"),
    ("lp", lambda d: d["method"] == "lp"), ("map", lambda d: d["method"] == "map"),
    ("mapping-only", lambda d: d["method"] == "map"), ("mapping only", lambda d: d["method"] == "map"),
    ("5-shot", lambda d: d["shots"] == "5"), ("5 shots", lambda d: d["shots"] == "5"),
    ("1shot", lambda d: d["shots"] == "1"), ("full", lambda d: d["shots"] == "full"),
    ("full data", lambda d: d["shots"] == "full"), ("dense", lambda d: d["level"] == 0),
    ("digits", lambda d: d["dataset"] == "digits"), ("fashion-mnist", lambda d: d["dataset"] == "fashion_mnist"),
    ("random", lambda d: d["arm"] == "random"), ("imp", lambda d: d["arm"] == "ticket"),
    ("mini", lambda d: d["preset"] == "mini"), ("acc>=50", lambda d: d["accuracy"] >= 0.5),
    ("ece<3", lambda d: d["ece"] < 0.03), ("level>=2 level<8", lambda d: d["level"] == 2),
])
def test_each_word_selects_its_runs(text, cond):
    assert hits(text) == where(cond(DF)), text


def test_same_field_is_either_and_different_fields_are_both():
    assert hits("L2 L8") == where(DF["level"].isin([2, 8]))
    assert hits("vp lp L8") == where(DF["method"].isin(["vp", "lp"]) & (DF["level"] == 8))


def test_negation_excludes():
    assert hits("L8 -lp") == where((DF["level"] == 8) & (DF["method"] != "lp"))
    assert hits("not family 0") == where(DF["family"] != 0)


def test_dates_and_commits():
    day = DF["created"].str[:10]
    assert hits("since 2026-11-20") == where(day >= "2026-11-20")
    assert hits("before 2026-11-20") == where(day < "2026-11-20")
    assert hits("until 2026-11-20") == where(day <= "2026-11-20")
    assert hits("after 2026-11-20") == where(day > "2026-11-20")
    assert hits("on 2026-11-12") == hits("2026-11-12") == where(day == "2026-11-12")
    assert hits("commit 37e11bd") == where(DF["git_commit"].str.startswith("37e11bd"))
    assert hits("aa01ff") == where(DF["git_commit"].str.startswith("aa01ff"))  # a bare hex prefix: hash or commit
    assert hits(DF["hash"].iloc[5]) == {5}


def test_unknown_words_are_named_and_left_out_never_silently():
    result = search("L8 banana 3 seed", DF)
    assert set(DF.index[result.mask]) == where(DF["level"] == 8)
    assert result.query.unknown == ("banana", "3", "seed")
    notice = result.notice
    assert "'banana'" in notice and "'3'" in notice and "'seed'" in notice and "\n" not in notice
    assert search("acc 50", DF).query.unknown == ("acc", "50")  # a number needs a comparison: acc>50


def test_empty_query_matches_everything():
    assert hits("") == hits("   ") == set(DF.index)


def test_properties_over_random_queries():
    """For random rows and random subsets of their own words: the row is always found, word order does
    not matter, adding a word on another field never adds runs, and a word and its negation split the table."""
    rng = random.Random(7)
    for _ in range(60):
        row = DF.iloc[rng.randrange(len(DF))]
        fam = "legacy" if pd.isna(row["family"]) else f"f{int(row['family'])}"
        words = [f"L{row['level']}", f"seed {row['seed']}", fam, row["method"],
                 "full" if row["shots"] == "full" else f"{row['shots']}-shot", row["dataset"]]
        picked = rng.sample(words, rng.randint(1, len(words)))
        mask = search(" ".join(picked), DF).mask
        assert mask.loc[row.name], picked
        shuffled = picked[:]
        rng.shuffle(shuffled)
        assert mask.equals(search(" ".join(shuffled), DF).mask)
        more = picked + [w for w in words if w not in picked][:1]
        assert set(DF.index[search(" ".join(more), DF).mask]) <= set(DF.index[mask])
        one = rng.choice(words)
        yes, no = search(one, DF).mask, search("not " + one, DF).mask
        assert (yes ^ no).all()


def test_parse_keeps_the_words_each_term_came_from():
    q = parse("L8 seed 3 -vp")
    assert [t.text for t in q.terms] == ["l8", "seed 3", "-vp"]
    assert [(t.field, t.value, t.negate) for t in q.terms] == [("level", 8, False), ("seed", 3, False),
                                                              ("method", "vp", True)]


def test_module_is_torch_and_streamlit_free():
    code = ("import sys, lthvp.ui.run_search; assert 'torch' not in sys.modules and 'streamlit' not in sys.modules; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
