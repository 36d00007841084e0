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


PROMPT_VIEWS = {"as learned": "the border as the model sees it (before normalisation)",
                "contrast-stretched": "border pixels mapped from their 1st-99th percentile to full range: "
                                      "structure a near-grey prompt hides",
                "|prompt - start|": "how far each border pixel moved from its start (grey, 0.5): black = unmoved, "
                                    "white = moved by 0.5 (the most possible)"}


def prompt_view(prompt: np.ndarray, view: str) -> np.ndarray:
    """One of PROMPT_VIEWS of a prompt image (H, W, 3 uint8 whose image area is black)."""
    if view not in PROMPT_VIEWS:
        raise ValueError(f"view must be one of {list(PROMPT_VIEWS)}, got {view!r}")
    border = prompt.any(axis=2)  # the image area is stored black
    out = prompt.astype(np.float32)
    if view == "contrast-stretched" and border.any():
        lo, hi = np.percentile(out[border], [1, 99])
        out = np.clip((out - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    elif view == "|prompt - start|":
        out = np.abs(out - 127.5) * 2
    out[~border] = 0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def apply_prompt(prompt: np.ndarray, images: np.ndarray, image_size: int) -> list[np.ndarray]:
    """Paste target images (N, H, W, 3 uint8, resized to ``image_size``) into the prompt's canvas,
    the way the model sees them (zero-pad + border prompt, before normalisation)."""
    from PIL import Image

    canvas = prompt.shape[0]
    if prompt.shape[1] != canvas or canvas < image_size:
        raise ValueError(f"the stored prompt is {prompt.shape[1]}x{canvas} pixels: it cannot frame a "
                         f"{image_size}px image (a square canvas of at least {image_size}px is needed)")
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
    readable = z.shape[1] <= 12  # beyond a dozen epochs the cell labels overlap: names on hover only
    fig = go.Figure(go.Heatmap(z=z, x=[f"epoch {i + 1}" for i in range(z.shape[1])], y=[f"target {t}" for t in targets],
                               text=text, texttemplate="%{text}" if readable else None, colorscale="Turbo",
                               showscale=False, xgap=1, ygap=1, hovertemplate="%{y} → %{text} at %{x}<extra></extra>"))
    if not readable:
        fig.update_xaxes(tickmode="array", tickvals=[f"epoch {i + 1}" for i in range(0, z.shape[1], 5)])
    fig.update_layout(title=f"label mapping over epochs ({changes} reassignment{'s' if changes != 1 else ''})",
                      height=max(260, 28 * len(targets) + 120), yaxis=dict(autorange="reversed"),
                      margin=dict(t=50))
    return fig


def curves_figure(record: dict) -> go.Figure:
    """Train loss/accuracy and validation accuracy/NLL per epoch (round) of one run, the chosen
    epoch marked."""
    curves = pd.DataFrame(record.get("curves") or [])
    fig = make_subplots(rows=1, cols=2, subplot_titles=["accuracy (%)", "loss / NLL (nats)"])
    if curves.empty:
        return fig
    by_steps = "steps" in curves and curves["steps"].notna().all()
    x = curves["steps"] if by_steps else curves["epoch"]
    where = "step %{x}" if by_steps else "epoch %{x}"
    for col, name, c, dash in (("train_acc", "train accuracy", 1, "dot"), ("val_acc", "validation accuracy", 1, None),
                               ("train_loss", "train loss", 2, "dot"), ("val_nll", "validation NLL", 2, None)):
        if col in curves and curves[col].notna().any():
            y = 100 * curves[col] if c == 1 else curves[col]  # accuracies in %, losses in nats
            fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines+markers", line={"dash": dash},
                                     hovertemplate=f"{name}: " + ("%{y:.1f}%" if c == 1 else "%{y:.3f} nats")
                                     + f"<br>{where}<extra></extra>"), row=1, col=c)
    best = record.get("best_epoch")
    if best is not None and best in set(curves["epoch"]):
        xb = float(x[curves["epoch"] == best].iloc[0])
        for c in (1, 2):
            fig.add_vline(x=xb, line={"color": "#888", "dash": "dash"}, row=1, col=c)
    fig.update_layout(height=360, template="plotly_white", margin={"t": 40, "b": 40, "l": 10, "r": 10},
                      legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="optimizer steps" if by_steps else "epoch")
    fig.update_yaxes(title_text="%", row=1, col=1)
    fig.update_yaxes(title_text="nats", row=1, col=2)
    return fig
