"""Shots per class, the one place that knows their type: an int >= 1, or ``FULL`` ("full").

A value crosses the UI (query parameters), the command line, configs, records, the results table
and the analysis; each of those goes through here instead of coercing with ``str``/``int``:

- :func:`parse` gives the config's type (int or "full") from any accepted spelling;
- :func:`text` gives the canonical text the tables hold ("5", "full") and the UI's option values
  (:func:`as_text`: the same, never raising, for analysis tables);
- :func:`label` / :func:`phrase` the words shown to people ("5-shot", "full data"; "5 shots");
- :func:`order` / :func:`sort_key` the order (numeric, "full" last);
- :func:`options` the shot counts a preset has training defaults for;
- :func:`arg` the argparse ``type=`` (one line for a bad value).

Torch-free and importing nothing of lthvp (``config`` and ``presets`` import it).
"""

from __future__ import annotations

import argparse
from typing import Iterable, Union

FULL = "full"
Shots = Union[int, str]  # int >= 1, or FULL


def parse(value) -> Shots:
    """The config's value: a positive int, or FULL; digit strings (" 5 ") read as ints."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word == FULL:
            return FULL
        try:
            value = int(word)
        except ValueError:
            raise ValueError(f"shots must be an integer >= 1 or 'full', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"shots must be an integer >= 1 or 'full', got {value!r}")
    if value < 1:
        raise ValueError(f"shots must be >= 1 or 'full', got {value}")
    return int(value)


def text(value) -> str:
    """The canonical text of a shots value: "5" or "full" (tables, query parameters, option values)."""
    return str(parse(value))


def as_text(value) -> str:
    """:func:`text` that never raises, for tables (the statistics also run on synthetic frames) and
    labels: the canonical text, or the raw text of a value that is not a shots value."""
    try:
        return text(value)
    except ValueError:
        return str(value)


def label(value) -> str:
    """Column and option label: "5-shot", "full data"."""
    t = as_text(value)
    return "full data" if t == FULL else f"{t}-shot"


def phrase(value) -> str:
    """In a sentence: "1 shot", "5 shots", "full data"."""
    t = as_text(value)
    return "full data" if t == FULL else f"{t} shot{'' if t == '1' else 's'}"


def sort_key(value) -> tuple:
    """Numeric order, FULL last, anything else (not a shots value) first by its text."""
    t = as_text(value)
    return (t == FULL, int(t) if t.isdigit() else 0, t)


def order(values: Iterable) -> list[str]:
    """The distinct canonical texts of ``values`` in :func:`sort_key` order: "1", "2", "10", "full"."""
    return sorted({as_text(v) for v in values}, key=sort_key)


def options(preset) -> list[str]:
    """The shot counts (canonical texts, ordered) a :class:`lthvp.results.presets.Preset` has VP
    training defaults for: what the Run page and ``sweep`` offer by default."""
    return order({*preset.vp_epochs, *preset.vp_steps, *preset.vp_batch})


def arg(value: str) -> Shots:
    """argparse ``type=``: the parsed value, or one line naming the bad value."""
    try:
        return parse(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
