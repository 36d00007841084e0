"""The v3 many-class sources: generated deterministically, distinct classes, recorded hashes
enforced where the data enters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lthvp.data import fractals, glyphs, sources
from lthvp.data.datasets import load_dataset, registered

SMALL_FRACTALS = fractals.FractalParams(classes=6, train_per_class=5, test_per_class=2, points=300)
SMALL_GLYPHS = glyphs.GlyphParams(classes=12, train_per_class=4, test_per_class=2)


@pytest.mark.parametrize("module,params", [(fractals, SMALL_FRACTALS), (glyphs, SMALL_GLYPHS)])
def test_generation_is_deterministic_and_shaped(module, params):
    a, b = module.generate(params), module.generate(params)
    assert sources.arrays_sha256(a) == sources.arrays_sha256(b)
    x, y, tx, ty = a
    assert x.shape == (params.classes * params.train_per_class, params.size, params.size) and x.dtype == np.uint8
    assert tx.shape == (params.classes * params.test_per_class, params.size, params.size)
    assert np.array_equal(np.bincount(y), np.full(params.classes, params.train_per_class))
    assert np.array_equal(np.bincount(ty), np.full(params.classes, params.test_per_class))
    other = module.generate(dataclasses.replace(params, seed=params.seed + 1))
    assert sources.arrays_sha256(other) != sources.arrays_sha256(a)  # the seed is used


def test_fractal_classes_are_distinct_and_images_vary_within_a_class():
    rng = np.random.default_rng(SMALL_FRACTALS.seed)
    classes = fractals.choose_classes(SMALL_FRACTALS, rng)
    canon = [fractals.render(m[None], np.random.default_rng(0), SMALL_FRACTALS, jitter=False)[0].astype(float)
             for m in classes]
    z = [(c - c.mean()) / c.std() for c in canon]
    for i in range(len(z)):
        fill = (canon[i] > 32).mean()
        assert 0.08 <= fill <= 0.45
        for j in range(i):
            assert (z[i] * z[j]).mean() <= 0.8
    x, y, _, _ = fractals.generate(SMALL_FRACTALS)
    assert len({x[k].tobytes() for k in np.flatnonzero(y == 0)}) == SMALL_FRACTALS.train_per_class


def test_glyph_classes_are_letters_of_other_scripts_never_latin_or_digits():
    names = glyphs.class_names(SMALL_GLYPHS)
    assert len(names) == len(set(names)) == SMALL_GLYPHS.classes
    for name in names:
        cp = int(name.split()[0][2:], 16)
        assert cp >= 0x0370  # beyond Basic Latin and Latin-1: no Latin letters, no ASCII digits
        assert any(lo <= cp <= hi for rs in glyphs.SCRIPTS.values() for lo, hi in rs)


def test_a_missing_glyph_is_told_from_a_real_one():
    fonts = glyphs._fonts()
    assert glyphs._covered("\u03b1", fonts[0])  # Greek alpha: every DejaVu face has it
    assert not glyphs._covered("\u4e2d", fonts[0])  # CJK: DejaVu has none
    assert not glyphs._covered(" ", fonts[0])  # blank


def test_a_cached_source_whose_pixels_changed_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.GENERATORS, "glyphs", (SMALL_GLYPHS, glyphs.generate))
    arrays = glyphs.generate(SMALL_GLYPHS)
    monkeypatch.setitem(sources.EXPECTED, "glyphs", sources.arrays_sha256(arrays))
    assert sources.arrays_sha256(sources._cached("glyphs", tmp_path)) == sources.EXPECTED["glyphs"]
    path = next((tmp_path / "generated").glob("glyphs-*.npz"))
    x, y, tx, ty = arrays
    x = x.copy()
    x[0, 0, 0] ^= 1
    np.savez(path, train_x=x, train_y=y, test_x=tx, test_y=ty)
    with pytest.raises(ValueError, match="pixels differ"):
        sources._cached("glyphs", tmp_path)


def test_sources_are_registered_with_their_class_names(tmp_path, monkeypatch):
    assert {"fractals", "glyphs"} <= set(registered())
    monkeypatch.setitem(sources.GENERATORS, "fractals", (SMALL_FRACTALS, fractals.generate))
    monkeypatch.setitem(sources.EXPECTED, "fractals",
                        sources.arrays_sha256(fractals.generate(SMALL_FRACTALS)))
    data = load_dataset("fractals", root=tmp_path)
    try:
        assert data.classes == [f"ifs_{c:03d}" for c in range(6)]
        assert len(data.train) + len(data.val) == 30 and len(data.test) == 12
        assert tuple(data.train.x.shape[1:]) == (3, 32, 32)
    finally:
        from lthvp.data import datasets

        datasets._LOADED.pop(("fractals", str(tmp_path)), None)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["glyphs", "fractals"])
def test_the_recorded_sources_regenerate_bit_for_bit(name, tmp_path):
    params, generate = sources.GENERATORS[name]
    arrays = generate(params)
    assert sources.arrays_sha256(arrays) == sources.EXPECTED[name]
    assert len(np.unique(arrays[1])) == params.classes >= 100
