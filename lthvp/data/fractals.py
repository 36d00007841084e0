"""Formula-driven fractal categories in the style of FractalDB (Kataoka et al., ACCV 2020).

A class is an iterated function system (IFS) of 2-4 random affine maps; its images are
chaos-game renderings of that IFS with the maps' parameters jittered, the point cloud rotated,
scaled and shifted, and pixel noise added. Everything is drawn from one seeded generator, so a
parameter set always yields the same arrays (their digest is recorded in the dataset card).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RENDER = 64  # chaos-game canvas; images are area-averaged down to ``size``


@dataclass(frozen=True)
class FractalParams:
    classes: int = 128
    train_per_class: int = 300
    test_per_class: int = 60
    size: int = 32
    points: int = 1200  # chaos-game points per image (after burn-in)
    jitter: float = 0.04  # SD of the per-image perturbation of each map parameter
    max_rotation: float = 30.0  # degrees, uniform +-
    noise: float = 6.0  # SD of additive pixel noise, in 0-255 units
    seed: int = 2020
    version: int = 1  # bump when the generator code changes: it names the cache file


def _contractive_maps(rng: np.random.Generator, n_maps: int) -> np.ndarray:
    """(n_maps, 6) affine maps (a, b, c, d, e, f) with spectral norm <= 0.85, so the IFS has an attractor."""
    maps = rng.uniform(-1, 1, size=(n_maps, 6))
    for m in maps:
        norm = np.linalg.norm(m[:4].reshape(2, 2), 2)
        if norm > 0.85:
            m[:4] *= 0.85 / norm
    return maps


def render(maps: np.ndarray, rng: np.random.Generator, p: FractalParams, jitter: bool = True) -> np.ndarray:
    """Render a batch: ``maps`` (B, M, 6) -> uint8 images (B, size, size)."""
    b, m, _ = maps.shape
    used = np.any(maps != 0, axis=2, keepdims=True)  # padding maps (all zero) are never chosen
    if jitter:
        maps = maps + rng.normal(0, p.jitter, size=maps.shape) * used
    det = (np.abs(maps[..., 0] * maps[..., 3] - maps[..., 1] * maps[..., 2]) + 1e-3) * used[..., 0]
    cdf = np.cumsum(det / det.sum(1, keepdims=True), axis=1)
    xy = np.zeros((b, 2))
    pts = np.empty((b, p.points, 2))
    rows = np.arange(b)
    for t in range(p.points + 20):  # 20 burn-in steps
        k = np.minimum((rng.random(b)[:, None] > cdf).sum(1), m - 1)
        a = maps[rows, k]
        xy = np.stack([a[:, 0] * xy[:, 0] + a[:, 1] * xy[:, 1] + a[:, 4],
                       a[:, 2] * xy[:, 0] + a[:, 3] * xy[:, 1] + a[:, 5]], 1)
        if t >= 20:
            pts[:, t - 20] = xy
    if jitter:  # a random similarity transform of each cloud
        theta = np.deg2rad(rng.uniform(-p.max_rotation, p.max_rotation, b))
        rot = np.stack([np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)], 1).reshape(b, 2, 2)
        pts = np.einsum("bij,bnj->bni", rot, pts)
    lo, hi = np.percentile(pts, 1, axis=1), np.percentile(pts, 99, axis=1)  # (b, 2): robust bounding box
    centre, span = (lo + hi) / 2, np.maximum((hi - lo).max(1), 1e-6)
    scale = rng.uniform(0.75, 0.95, b) if jitter else np.full(b, 0.9)
    shift = rng.uniform(-0.05, 0.05, (b, 2)) if jitter else np.zeros((b, 2))
    uv = (pts - centre[:, None]) / span[:, None, None] * scale[:, None, None] + 0.5 + shift[:, None]
    ij = np.clip((uv * RENDER).astype(np.int64), 0, RENDER - 1)
    flat = rows[:, None] * RENDER * RENDER + ij[..., 1] * RENDER + ij[..., 0]
    counts = np.bincount(flat.ravel(), minlength=b * RENDER * RENDER).reshape(b, RENDER, RENDER)
    img = 1.0 - np.exp(-counts / 2.0)
    f = RENDER // p.size
    img = img.reshape(b, p.size, f, p.size, f).mean((2, 4)) * 255.0
    if jitter:
        img = img + rng.normal(0, p.noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def choose_classes(p: FractalParams, rng: np.random.Generator) -> list[np.ndarray]:
    """Draw IFS until ``p.classes`` are kept: fill rate in [0.08, 0.45] of the canvas at their
    canonical rendering, and no canonical image correlating > 0.8 with an earlier class."""
    kept, canon = [], []
    while len(kept) < p.classes:
        maps = _contractive_maps(rng, int(rng.integers(2, 5)))
        padded = np.zeros((4, 6))
        padded[:len(maps)] = maps  # rows left at zero pad to 4 maps and are never chosen
        img = render(padded[None], np.random.default_rng(0), p, jitter=False)[0].astype(float)
        fill = (img > 32).mean()
        if not 0.08 <= fill <= 0.45:
            continue
        z = (img - img.mean()) / (img.std() + 1e-9)
        if any(float((z * c).mean()) > 0.8 for c in canon):
            continue
        kept.append(padded)
        canon.append(z)
    return kept


def generate(p: FractalParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y), images uint8 (N, size, size), labels int64."""
    rng = np.random.default_rng(p.seed)
    classes = choose_classes(p, rng)
    per = p.train_per_class + p.test_per_class
    xs, ys = [], []
    for c, maps in enumerate(classes):
        batch = np.repeat(maps[None], per, axis=0)
        xs.append(render(batch, rng, p))
        ys.append(np.full(per, c, dtype=np.int64))
    x, y = np.stack(xs), np.stack(ys)  # (C, per, H, W), (C, per)
    train = (x[:, :p.train_per_class].reshape(-1, p.size, p.size), y[:, :p.train_per_class].ravel())
    test = (x[:, p.train_per_class:].reshape(-1, p.size, p.size), y[:, p.train_per_class:].ravel())
    return train[0], train[1], test[0], test[1]
