"""Printed glyphs of several scripts, rendered from the Debian package fonts-dejavu-core.

A class is one letter of the Greek, Cyrillic, Armenian, Georgian or Hebrew alphabet (no Latin
letters or digits: the targets are digits and clothing, and the source must be another task).
Letters that render alike (Cyrillic 'а' and Greek 'α' are not, 'о' and 'ο' are) are dropped by
comparing canonical renderings. An image is the letter in one of the six core DejaVu faces
(stroke weight and serif vary), under a random affine map, with pixel noise; all draws come
from one seeded generator, and the fonts' sha256 is part of the dataset card, because another
font build renders other pixels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")  # every face of fonts-dejavu-core
SCRIPTS = {  # code point ranges (inclusive)
    "greek": [(0x03B1, 0x03C1), (0x03C3, 0x03C9), (0x0393, 0x0394), (0x0398, 0x0398), (0x039B, 0x039B),
              (0x039E, 0x039E), (0x03A0, 0x03A0), (0x03A3, 0x03A3), (0x03A6, 0x03A6), (0x03A8, 0x03A9)],
    "cyrillic": [(0x0430, 0x044F), (0x0411, 0x0411), (0x0414, 0x0414), (0x0416, 0x0419), (0x041B, 0x041B),
                 (0x0423, 0x0423), (0x0424, 0x0424), (0x0426, 0x042F), (0x0402, 0x040F), (0x0452, 0x045F)],
    "armenian": [(0x0531, 0x0556), (0x0561, 0x0586)],
    "georgian": [(0x10D0, 0x10F0)],
    "hebrew": [(0x05D0, 0x05EA)],
}
RENDER = 64


@dataclass(frozen=True)
class GlyphParams:
    classes: int = 128
    train_per_class: int = 300
    test_per_class: int = 60
    size: int = 32
    max_rotation: float = 15.0  # degrees, uniform +-
    max_shear: float = 0.25
    scale: tuple[float, float] = (0.7, 1.0)
    noise: float = 6.0  # SD of additive pixel noise, in 0-255 units
    seed: int = 2020
    version: int = 1  # bump when the generator code changes: it names the cache file


def missing_fonts() -> list[str]:
    return [f for f in FONTS if not (FONT_DIR / f).exists()]


def fonts_sha256() -> str:
    h = hashlib.sha256()
    for f in FONTS:
        h.update((FONT_DIR / f).read_bytes())
    return h.hexdigest()


def _fonts():
    from PIL import ImageFont

    return [ImageFont.truetype(str(FONT_DIR / f), 44) for f in FONTS]


def _draw(ch: str, font) -> np.ndarray:
    """The glyph centred on a RENDER canvas, float in [0, 1] (white on black)."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (RENDER, RENDER), 0)
    ImageDraw.Draw(img).text((RENDER / 2, RENDER / 2), ch, fill=255, font=font, anchor="mm")
    return np.asarray(img, dtype=np.float64) / 255.0


def _covered(ch: str, font) -> bool:
    """The font has a real glyph for ``ch``, not the .notdef box that every missing glyph shares."""
    mask = font.getmask(ch)
    if mask.getbbox() is None:
        return False
    notdef = font.getmask("\u4e2d")  # a CJK ideograph: no DejaVu face has one, so this is .notdef
    return bytes(mask) != bytes(notdef) or mask.size != notdef.size


def _shape(img: np.ndarray) -> np.ndarray:
    """The glyph cropped to its bounding box and stretched to 32x32, standardised: letters
    that differ only in size (Cyrillic 'З' and 'з') compare as alike, as the random scale of
    the images would make them."""
    from PIL import Image

    rows, cols = np.flatnonzero(img.max(1) > 0.1), np.flatnonzero(img.max(0) > 0.1)
    crop = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    small = np.asarray(Image.fromarray(np.uint8(crop * 255)).resize((32, 32), Image.BILINEAR), dtype=np.float64)
    return (small - small.mean()) / (small.std() + 1e-9)


def choose_classes(p: GlyphParams, rng: np.random.Generator) -> list[tuple[str, list[int]]]:
    """Letters (with the faces that cover them) in a seeded order, a letter kept when at least
    two faces have it and its size-normalised Sans rendering correlates <= 0.7 with every
    kept letter's."""
    fonts = _fonts()
    pool = [chr(cp) for rs in SCRIPTS.values() for lo, hi in rs for cp in range(lo, hi + 1)]
    kept, canon = [], []
    for i in rng.permutation(len(pool)):
        ch = pool[i]
        faces = [k for k, f in enumerate(fonts) if _covered(ch, f)]
        if len(faces) < 2 or 0 not in faces:
            continue
        z = _shape(_draw(ch, fonts[0]))
        if any(float((z * c).mean()) > 0.7 for c in canon):
            continue
        kept.append((ch, faces))
        canon.append(z)
        if len(kept) == p.classes:
            return kept
    raise ValueError(f"only {len(kept)} distinct letters are available, {p.classes} asked")


def _affine(img: np.ndarray, rng: np.random.Generator, p: GlyphParams) -> np.ndarray:
    from PIL import Image

    theta = np.deg2rad(rng.uniform(-p.max_rotation, p.max_rotation))
    shear = rng.uniform(-p.max_shear, p.max_shear)
    s = rng.uniform(*p.scale)
    a = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.array([[1, shear], [0, 1]]) * s
    inv = np.linalg.inv(a)  # PIL maps output pixels to input pixels
    c = RENDER / 2
    t = rng.uniform(-4, 4, 2)
    off = np.array([c, c]) - inv @ (np.array([c, c]) + t)
    coeffs = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
    out = Image.fromarray(np.uint8(np.round(img * 255))).transform((RENDER, RENDER), Image.AFFINE, coeffs,
                                                                   resample=Image.BILINEAR)
    return np.asarray(out, dtype=np.float64)


def generate(p: GlyphParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y), images uint8 (N, size, size), labels int64."""
    if missing_fonts():
        raise FileNotFoundError(f"fonts missing under {FONT_DIR}: {missing_fonts()}; "
                                "install them with `apt-get install fonts-dejavu-core`")
    rng = np.random.default_rng(p.seed)
    classes = choose_classes(p, rng)
    fonts = _fonts()
    per = p.train_per_class + p.test_per_class
    f = RENDER // p.size
    x = np.empty((len(classes), per, p.size, p.size), dtype=np.uint8)
    for c, (ch, faces) in enumerate(classes):
        bases = {k: _draw(ch, fonts[k]) for k in faces}
        for i in range(per):
            img = _affine(bases[faces[int(rng.integers(len(faces)))]], rng, p)
            img = img.reshape(p.size, f, p.size, f).mean((1, 3)) + rng.normal(0, p.noise, (p.size, p.size))
            x[c, i] = np.clip(np.round(img), 0, 255)
    y = np.repeat(np.arange(len(classes), dtype=np.int64)[:, None], per, axis=1)
    tr, te = slice(0, p.train_per_class), slice(p.train_per_class, per)
    return (x[:, tr].reshape(-1, p.size, p.size), y[:, tr].ravel(),
            x[:, te].reshape(-1, p.size, p.size), y[:, te].ravel())


def class_names(p: GlyphParams) -> list[str]:
    """Each class as 'U+03B1 α' (code point and letter), in label order."""
    return [f"U+{ord(ch):04X} {ch}" for ch, _ in choose_classes(p, np.random.default_rng(p.seed))]
