"""Prompt pictures and label mappings (pure plotly/numpy, no Streamlit): decode a stored
prompt PNG, put target images into it, grids of images, mapping tables and histories."""

from __future__ import annotations

import base64
import io
import math
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# --- prompts and label mappings -----------------------------------------------------------------
def decode_png(b64: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        return np.asarray(img.convert("RGB"))


def apply_prompt(prompt: np.ndarray, images: np.ndarray, image_size: int) -> list[np.ndarray]:
    """Paste target images (N, H, W, 3 uint8, resized to ``image_size``) into the prompt's canvas,
    the way the model sees them (zero-pad + border prompt, before normalisation)."""
    from PIL import Image

    canvas = prompt.shape[0]
    lo = (canvas - image_size + 1) // 2
    out = []
    for img in images:
        small = np.asarray(Image.fromarray(img).resize((image_size, image_size), Image.BILINEAR))
        composed = prompt.copy()
        composed[lo:lo + image_size, lo:lo + image_size] = small
        out.append(composed)
    return out


def image_grid(items: Sequence[tuple[str, np.ndarray]], cols: int = 5, scale: int = 4,
               title: str | None = None) -> go.Figure:
    """A grid of RGB images (learned prompts, prompted examples) with a title per image."""
    n = max(1, len(items))
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _ in items] or [""],
                        horizontal_spacing=0.02, vertical_spacing=0.12 / rows)
    for i, (label, img) in enumerate(items):
        fig.add_trace(go.Image(z=img, name=label, hovertemplate=f"{label}<br>x %{{x}} y %{{y}}<br>"
                                                                 "rgb %{z}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor=None)
    side = (items[0][1].shape[0] if items else 32) * scale
    fig.update_layout(height=rows * (side + 50) + 40, title=title, margin=dict(t=60 if title else 30, b=10, l=10, r=10))
    return fig


def mapping_table(records: Sequence[dict], source_classes: Sequence[str]) -> pd.DataFrame:
    """Target class -> source class name, one column per record (e.g. per level)."""
    cols = {}
    target_classes = None
    for r in records:
        if not r.get("mapping"):
            continue
        target_classes = target_classes or r.get("classes") or [str(i) for i in range(len(r["mapping"]))]
        c = r["config"]
        cols[f"L{c['level']} ({100 * r['remaining_fraction']:.1f}%)"] = [
            source_classes[s] if 0 <= s < len(source_classes) else str(s) for s in r["mapping"]]
    if not cols:
        return pd.DataFrame()
    out = pd.DataFrame(cols, index=pd.Index(target_classes, name="target class"))
    return out


def mapping_history_figure(record: dict, source_classes: Sequence[str]) -> go.Figure:
    """Label mapping per epoch (ILM recomputes it every epoch): cell = source class chosen for a
    target class at that epoch; changes are visible as colour changes."""
    history = record.get("mapping_history") or []
    targets = record.get("classes") or [str(i) for i in range(len(history[0]) if history else 0)]
    if not history:
        return go.Figure().update_layout(title="no mapping history (LP run or FLM/RLM mapping)")
    z = np.array(history, dtype=float).T  # (targets, epochs)
    text = [[source_classes[int(s)] if 0 <= int(s) < len(source_classes) else str(int(s)) for s in row] for row in z]
    changes = int((np.diff(z, axis=1) != 0).sum()) if z.shape[1] > 1 else 0
    fig = go.Figure(go.Heatmap(z=z, x=[f"epoch {i + 1}" for i in range(z.shape[1])], y=[f"target {t}" for t in targets],
                               text=text, texttemplate="%{text}", colorscale="Turbo", showscale=False,
                               hovertemplate="%{y} → %{text} at %{x}<extra></extra>"))
    fig.update_layout(title=f"label mapping over epochs ({changes} reassignment{'s' if changes != 1 else ''})",
                      height=max(260, 28 * len(targets) + 120), yaxis=dict(autorange="reversed"),
                      margin=dict(t=50))
    return fig
