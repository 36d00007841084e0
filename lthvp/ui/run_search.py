"""Run search in the app's own words: ``L8 seed 3``, ``family 0``/``f0``, ``vp``/``lp``/``map``,
``5-shot``/``full``, dataset, arm and preset names, ``since 2026-11-29``, ``commit 37e11bd``,
``acc>50`` (percent), ``not lp``/``-lp``. Words on the same field are alternatives (``L2 L8``:
either level), different fields must all hold (``L8 seed 3``: level 8 *and* seed 3); comparisons
and negations always must hold. A word the parser does not know is named in the notice and left
out, never silently dropped. Pure (text + results table -> mask); no Streamlit, no torch."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from lthvp.analysis.pairing import family_keys
from lthvp.data.catalog import TARGETS
from lthvp.results.config import ARMS
from lthvp.results.presets import PRESETS

METHOD_WORDS = {"vp": "vp", "ilm-vp": "vp", "prompt": "vp", "prompting": "vp", "lp": "lp", "probe": "lp",
                "linear-probe": "lp", "map": "map", "mapping": "map", "mapping-only": "map", "map-only": "map"}
ARM_WORDS = {**{a: a for a in ARMS}, "imp": "ticket", "one-shot": "oneshot"}
FIELD_WORDS = {"level": "level", "lvl": "level", "l": "level", "seed": "seed", "seeds": "seed",
               "family": "family", "fam": "family", "f": "family", "shots": "shots", "shot": "shots",
               "method": "method", "dataset": "dataset", "ds": "dataset", "arm": "arm", "preset": "preset",
               "commit": "commit", "hash": "hash", "date": "date", "created": "date", "on": "date",
               "since": "date", "from": "date", "after": "date", "before": "date", "until": "date",
               "acc": "accuracy", "accuracy": "accuracy", "ece": "ece"}
DATE_OPS = {"since": ">=", "from": ">=", "after": ">", "before": "<", "until": "<="}
NUMERIC = ("level", "seed", "accuracy", "ece")  # fields compared as numbers (accuracy/ECE typed in %)
DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
HEX = re.compile(r"^[0-9a-f]{4,40}(-dirty)?$")
OP = re.compile(r"^([a-z]+)(<=|>=|<|>|=|:)(.*)$")
GLUED = re.compile(r"^(level|lvl|l|seed|family|fam|f)(\d+)$")
SHOTS = re.compile(r"^(\d+)-?shots?$")


@dataclass(frozen=True)
class Term:
    """One condition: ``field op value`` (``negate``: must not hold); ``text``: the words it came from."""
    field: str
    op: str
    value: object
    negate: bool
    text: str


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]
    unknown: tuple[str, ...]

    def notice(self) -> str | None:
        """One line naming every word that was left out (plain text: the caller shows it as typed)."""
        if not self.unknown:
            return None
        return ("Not understood, left out of the search: " + ", ".join(f"'{w}'" for w in self.unknown)
                + ". Try L8, level 8, seed 3, family 0, f0, vp, lp, map, 5-shot, full, a dataset or arm name, "
                  "since 2026-11-29, commit 37e11bd, acc>50.")


def _words(text: str) -> list[str]:
    """Lower-case words; ``key: value`` and ``key = value`` are glued to one word."""
    words = re.sub(r"\s*(<=|>=|<|>|=|:)\s*", r"\1", str(text).lower().replace(",", " ")).split()
    return [w for w in words if w]


def _value(field: str, raw: str, datasets: set[str]):
    """The typed value of ``raw`` for ``field``, or None when it is not one."""
    raw = raw.strip().lower()
    if field == "level":
        m = re.fullmatch(r"l?(\d+)", raw)
        return int(m.group(1)) if m else None
    if field == "seed":
        return int(raw) if raw.isdigit() else None
    if field == "family":
        m = re.fullmatch(r"f?(\d+)", raw)
        return m.group(1) if m else ("legacy" if raw == "legacy" else None)
    if field == "shots":
        m = SHOTS.match(raw) or re.fullmatch(r"(\d+)", raw)
        return m.group(1) if m else ("full" if raw in ("full", "full-data") else None)
    if field == "method":
        return METHOD_WORDS.get(raw)
    if field == "arm":
        return ARM_WORDS.get(raw)
    if field == "dataset":
        name = raw.replace("-", "_")
        return name if name in datasets else None
    if field == "preset":
        return raw if raw in PRESETS else None
    if field in ("commit", "hash"):
        return raw if HEX.match(raw) else None
    if field == "date":
        return raw if DATE.match(raw) else None
    if field in ("accuracy", "ece"):
        try:
            return float(raw.rstrip("%"))
        except ValueError:
            return None
    return None


def _bare(word: str, datasets: set[str]) -> tuple[str, str, object] | None:
    """A word that names a value by itself: (field, op, value), or None."""
    if m := GLUED.match(word):
        return FIELD_WORDS[m.group(1)], "=", m.group(2) if FIELD_WORDS[m.group(1)] == "family" else int(m.group(2))
    if SHOTS.match(word) or word in ("full", "full-data"):
        return "shots", "=", _value("shots", word, datasets)
    if word == "dense":
        return "level", "=", 0
    if word == "legacy":
        return "family", "=", "legacy"
    for field, table in (("method", METHOD_WORDS), ("arm", ARM_WORDS)):
        if word in table:
            return field, "=", table[word]
    if word.replace("-", "_") in datasets:
        return "dataset", "=", word.replace("-", "_")
    if word in PRESETS:
        return "preset", "=", word
    if DATE.match(word) and len(word) >= 7:
        return "date", "=", word
    if HEX.match(word):
        return "hash_or_commit", "=", word
    return None


def parse(text: str, datasets=()) -> Query:
    """The query's terms and the words it does not understand. ``datasets``: names known besides
    the catalog's targets (e.g. the table's own)."""
    known = {d.lower() for d in datasets} | {d for names in TARGETS.values() for d in names}
    words, terms, unknown, i = _words(text), [], [], 0
    while i < len(words):
        start, negate = i, False
        if words[i] in ("not", "-") and i + 1 < len(words):
            negate, i = True, i + 1
        word = words[i]
        if word.startswith("-") and len(word) > 1:
            negate, word = True, word[1:]
        found, used = None, 1
        if (m := OP.match(word)) and m.group(1) in FIELD_WORDS:
            field, op, raw = FIELD_WORDS[m.group(1)], m.group(2), m.group(3)
            op = "=" if op == ":" else op
            if not raw and i + 1 < len(words):  # "level: 8" glued to "level:" then "8"
                raw, used = words[i + 1], 2
            if (value := _value(field, raw, known)) is not None and (op == "=" or field in NUMERIC + ("date",)):
                found = (field, DATE_OPS.get(m.group(1), op) if op == "=" else op, value)
        elif word in FIELD_WORDS and i + 1 < len(words) and \
                (value := _value(FIELD_WORDS[word], words[i + 1], known)) is not None:
            if FIELD_WORDS[word] not in ("accuracy", "ece"):  # a bare number needs a comparison: acc>50
                found, used = (FIELD_WORDS[word], DATE_OPS.get(word, "="), value), 2
        elif re.fullmatch(r"\d+", word) and i + 1 < len(words) and re.fullmatch(r"shots?", words[i + 1]):
            found, used = ("shots", "=", word), 2
        elif word == "full" and i + 1 < len(words) and words[i + 1] == "data":
            found, used = ("shots", "=", "full"), 2
        elif word in ("mapping", "map") and i + 1 < len(words) and words[i + 1] == "only":
            found, used = ("method", "=", "map"), 2
        else:
            found = _bare(word, known)
        if found is None:
            unknown.append(" ".join(words[start:i + 1]))
            i += 1
            continue
        terms.append(Term(found[0], found[1], found[2], negate, " ".join(words[start:i + used])))
        i += used
    return Query(tuple(terms), tuple(unknown))


def _compare(series: pd.Series, op: str, value) -> pd.Series:
    if op == "=":
        return series == value
    return {"<": series < value, "<=": series <= value, ">": series > value, ">=": series >= value}[op]


def _column(df: pd.DataFrame, field: str) -> pd.Series | None:
    """The table's values for a field, in the type the terms carry (None: the table lacks it)."""
    if field == "family":
        return pd.Series(family_keys(df["family"]), index=df.index) if "family" in df else None
    if field in ("accuracy", "ece"):
        return 100 * pd.to_numeric(df[field], errors="coerce") if field in df else None
    if field in ("level", "seed"):
        return pd.to_numeric(df[field], errors="coerce") if field in df else None
    if field == "date":
        return df["created"].fillna("").astype(str).str[:10] if "created" in df else None
    if field == "commit":
        return df["git_commit"].fillna("").astype(str).str.lower() if "git_commit" in df else None
    if field in df:
        return df[field].fillna("").astype(str).str.lower()
    return None


def _term_mask(df: pd.DataFrame, term: Term) -> pd.Series:
    false = pd.Series(False, index=df.index)
    if term.field == "hash_or_commit":
        found = false
        for field in ("hash", "commit"):
            if (col := _column(df, field)) is not None:
                found = found | col.str.startswith(str(term.value))
        return found
    col = _column(df, term.field)
    if col is None:
        return false
    if term.field in ("hash", "commit"):
        return col.str.startswith(str(term.value))
    if term.field == "date":
        day = str(term.value)
        if term.op == "=":
            return (col != "") & col.str.startswith(day)
        if term.op in (">", "<="):  # after / until a day (or month, year): the whole period counts as "in"
            day = day + "\uffff"
        return (col != "") & _compare(col, term.op, day)
    return _compare(col, term.op, term.value).fillna(False).astype(bool)


def matches(df: pd.DataFrame, query: Query) -> pd.Series:
    """Boolean mask over ``df``: every field's equality terms OR-ed, fields, comparisons and
    negations AND-ed. An empty query matches everything."""
    mask = pd.Series(True, index=df.index)
    groups: dict[str, pd.Series] = {}
    for term in query.terms:
        hit = _term_mask(df, term)
        if term.negate:
            mask &= ~hit
        elif term.op == "=":
            groups[term.field] = groups.get(term.field, pd.Series(False, index=df.index)) | hit
        else:
            mask &= hit
    for hit in groups.values():
        mask &= hit
    return mask


@dataclass(frozen=True)
class SearchResult:
    mask: pd.Series
    query: Query

    @property
    def notice(self) -> str | None:
        return self.query.notice()


def search(text: str, df: pd.DataFrame) -> SearchResult:
    """Parse ``text`` against the table's own dataset names and return the rows it selects."""
    datasets = df["dataset"].dropna().astype(str).unique() if "dataset" in df else ()
    query = parse(text or "", datasets)
    return SearchResult(matches(df, query), query)
