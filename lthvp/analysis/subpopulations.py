"""Who pays for compression: per-class effects and pruning-identified exemplars, VP vs LP.

A sparse ticket can keep the headline accuracy while some classes or images pay for it (Hooker
et al. 2019, "What do compressed deep neural networks forget?"). Everything here is computed
from the per-sample test probabilities every record stores, against the test split's true
labels; pure numpy/pandas, no torch or Streamlit (:func:`test_split` imports torch lazily).

* **Per-class effects** (:func:`per_class_effects`): accuracy, or top-label ECE (15 bins, the
  metrics contract) over the test images of each true class, level L minus the dense level 0,
  paired within (family, seed). The effects module's model: family and seed crossed random
  factors (:func:`lthvp.analysis.inference.crossed`; seeds alone when there is one family), the
  family-mean t-interval beside it (``*_fm``); Holm's correction runs over the classes of one
  (method, level). ``vp-lp``: VP's change minus LP's, per (family, seed).
* **Exemplars** (:func:`exemplars`): per test image, the modal prediction across the paired
  runs (families x seeds) of the dense level and of level L; an exemplar is an image where the
  two differ. Tie rule for the mode: among the classes with the most votes, the one with the
  highest mean probability over those runs; if that ties exactly too, the smallest class index.
  The fraction of the test set comes with a 95% Wilson score interval, which treats the test
  images as a sample of the target distribution (the spread between tickets is already averaged
  into the modal predictions; with three families a bootstrap over families has 10 distinct
  resamples and says little). Part of any such count is run-to-run variation (a VP run's
  predictions move between seeds at one level): :func:`split_half` compares two disjoint halves
  of the pairs, dense with dense and dense with sparse, so the two counts differ only by sparsity.
  ``kind``: *broken* (dense right, sparse wrong), *fixed* (dense
  wrong, sparse right) or *hard* (dense wrong and sparse wrong in another way).
* **Confidence shift**: per image, the mean true-class probability at level L minus at dense.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lthvp.analysis.inference import crossed, holm
from lthvp.analysis.pairing import family_keys
from lthvp.analysis.replication import prepare
from lthvp.results.predictions import decode_probs
from lthvp.results.shots import as_text as shots_text

N_BINS = 15
METRICS = ("accuracy", "ece")
Z95 = 1.959963984540054
KINDS = ("broken", "fixed", "hard")
ORDER = ("vp", "map", "lp")  # methods in the order tables and charts list them
SPLITS = 50  # random half splits for the run-to-run reference (~1 ms each)


# --- which runs ----------------------------------------------------------------------------------
def select_runs(table: pd.DataFrame, dataset: str, shots, methods, levels, arm: str = "ticket",
                families=None) -> pd.DataFrame:
    """The runs that enter: the effects module's planned runs (main protocol per method and shots,
    the legacy study left out where numbered families exist, family keys as text), of one dataset
    and shot count, for ``methods``: the dense ticket level 0 and ``arm`` at ``levels``.
    ``families`` (keys: '0', 'legacy') picks families first, so the legacy study can be picked."""
    if table.empty:
        return table.assign(family=[])
    table = table[table["dataset"] == dataset]  # per dataset, as the effects module does
    if families is not None:  # before prepare(), which drops the legacy study where numbered families exist
        table = table[[f in {str(v) for v in families} for f in family_keys(table["family"])]]
    runs = prepare(table)
    runs = runs[(runs["shots"] == shots_text(shots)) & runs["method"].isin(list(methods))]
    levels = [int(v) for v in np.atleast_1d(levels)]
    dense = (runs["arm"] == "ticket") & (runs["level"] == 0)
    runs = runs[dense | ((runs["arm"] == arm) & runs["level"].isin([v for v in levels if v or arm != "ticket"]))]
    return runs.drop_duplicates(["method", "arm", "level", "family", "seed"]).reset_index(drop=True)


def stack(runs: pd.DataFrame, records) -> tuple[pd.DataFrame, np.ndarray]:
    """(runs that have test predictions, their probabilities as one (R, N, K) array). ``records``
    maps a hash to its stored record (dict or callable); runs without predictions (older records)
    are left out. Raises ValueError when the runs disagree on the test split's shape."""
    get = records if callable(records) else records.get
    kept, arrays = [], []
    for i, h in enumerate(runs["hash"]):
        rec = get(h)
        pred = ((rec or {}).get("predictions") or {}).get("test")
        if pred is None:
            continue
        kept.append(i)
        arrays.append(decode_probs(pred))
    if len({a.shape for a in arrays}) > 1:
        raise ValueError(f"runs disagree on the test split: prediction shapes {sorted({a.shape for a in arrays})}")
    probs = np.stack(arrays) if arrays else np.zeros((0, 0, 0))
    return runs.iloc[kept].reset_index(drop=True), probs


def test_split(dataset: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The target's test images (N, H, W, 3 uint8), true labels and class names, in the order the
    records' predictions use. Imports torch (the dataset registry); pages cache the result."""
    from lthvp.data.datasets import load_dataset

    data = load_dataset(dataset)
    return (data.test.x.permute(0, 2, 3, 1).numpy().astype(np.uint8), data.test.y.numpy().astype(np.int64),
            list(data.classes))


def check_labels(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 3 or probs.shape[1] != len(labels):
        raise ValueError(f"the stored predictions hold {probs.shape[1] if probs.ndim == 3 else 0} test samples, "
                         f"the test split {len(labels)}: they are not of this dataset's test split")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[2]):
        raise ValueError(f"labels must lie in [0, {probs.shape[2] - 1}]")
    return labels


# --- per class ------------------------------------------------------------------------------------
def class_metrics(probs: np.ndarray, labels, n_bins: int = N_BINS) -> dict[str, np.ndarray]:
    """Per run and true class, over the test images of that class: accuracy and top-label ECE
    ((lower, upper] bins, confidence 0 in the first; equals lthvp.results.metrics on the subset).
    Both (R, K); NaN for a class without test images."""
    labels = check_labels(probs, labels)
    r, n, k = probs.shape
    pred, conf = probs.argmax(-1), probs.max(-1)
    correct = (pred == labels).astype(float)
    count = np.bincount(labels, minlength=k).astype(float)
    b = np.clip(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:], conf, side="left"), 0, n_bins - 1)
    cell = (np.arange(r)[:, None] * k + labels[None, :]) * n_bins + b
    size = r * k * n_bins
    gap = np.bincount(cell.ravel(), correct.ravel(), size) - np.bincount(cell.ravel(), conf.ravel(), size)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount((np.arange(r)[:, None] * k + labels).ravel(), correct.ravel(), r * k).reshape(r, k) / count
        ece = np.abs(gap).reshape(r, k, n_bins).sum(-1) / count
    return {"accuracy": acc, "ece": ece}


def _paired(runs: pd.DataFrame, values: np.ndarray, method: str, level: int, arm: str) -> pd.DataFrame:
    """Per (family, seed) of ``method``: the value at (arm, level) and at the dense ticket level 0."""
    cols = list(range(values.shape[1]))
    frame = pd.concat([runs[["method", "arm", "level", "family", "seed"]].reset_index(drop=True),
                       pd.DataFrame(values, columns=cols)], axis=1)
    frame = frame[frame["method"] == method]
    dense = frame[(frame["arm"] == "ticket") & (frame["level"] == 0)].set_index(["family", "seed"])[cols]
    sparse = frame[(frame["arm"] == arm) & (frame["level"] == level)].set_index(["family", "seed"])[cols]
    both = dense.index.intersection(sparse.index)
    return pd.concat({"dense": dense.loc[both], "sparse": sparse.loc[both]}, axis=1)


def _unit_mean(values: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Seeds averaged inside each family (the unit); the seeds themselves when one family."""
    fam = values.index.get_level_values("family")
    if len(set(fam)) >= 2:
        return values.groupby(level="family").mean(), "family"
    return values, "seed"


def _class_rows(d: pd.DataFrame, dense: pd.DataFrame, sparse: pd.DataFrame, n_pairs: int, **key) -> list[dict]:
    mean_dense, mean_sparse = _unit_mean(dense)[0].mean(), _unit_mean(sparse)[0].mean()
    rows = []
    for c in d.columns:
        col = d[c].dropna()
        s = crossed(pd.DataFrame({"family": col.index.get_level_values("family"),
                                  "seed": col.index.get_level_values("seed"), "d": col.to_numpy()}))
        rows.append({**key, "class": int(c), "dense": float(mean_dense[c]), "sparse": float(mean_sparse[c]),
                     "estimate": s["estimate"], "ci_low": s["ci_low"], "ci_high": s["ci_high"], "p": s["p"],
                     "ci_low_fm": s["ci_low_fm"], "ci_high_fm": s["ci_high_fm"],
                     "n_units": s["n_families"] if s["n_families"] > 1 else s["n_seeds"],
                     "unit": "family x seed" if s["n_families"] > 1 else "seed", "n_pairs": n_pairs})
    return rows


def per_class_effects(runs: pd.DataFrame, probs: np.ndarray, labels, classes=None, metric: str = "accuracy",
                      levels=None, arm: str = "ticket") -> pd.DataFrame:
    """Per (method, level, class): the dense and sparse means, level minus dense with a 95%
    t-interval and p over the unit (family; seed when one family), Holm p over the classes of
    that (method, level); method ``vp-lp`` for VP's change minus LP's. Fractions, not points."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    cols = ["metric", "method", "level", "class", "class_name", "dense", "sparse", "estimate", "ci_low", "ci_high",
            "p", "p_holm", "ci_low_fm", "ci_high_fm", "n_units", "unit", "n_pairs"]
    if not len(runs):
        return pd.DataFrame(columns=cols)
    values = class_metrics(probs, labels)[metric]
    sparse_levels = sorted({int(v) for v in runs.loc[runs["arm"] == arm, "level"]} - ({0} if arm == "ticket" else set()))
    levels = sparse_levels if levels is None else [int(v) for v in np.atleast_1d(levels) if int(v) in sparse_levels]
    rows, deltas = [], {}
    for level in levels:
        for method in sorted(set(runs["method"]), key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m)):
            pair = _paired(runs, values, method, level, arm)
            if pair.empty:
                continue
            d = pair["sparse"] - pair["dense"]
            deltas[(method, level)] = (d, pair)
            rows += _class_rows(d, pair["dense"], pair["sparse"], len(d), metric=metric, method=method, level=level)
        if ("vp", level) in deltas and ("lp", level) in deltas:
            (dv, pv), (dl, pl) = deltas[("vp", level)], deltas[("lp", level)]
            both = dv.index.intersection(dl.index)
            if len(both):
                rows += _class_rows(dv.loc[both] - dl.loc[both], pv["dense"].loc[both] - pl["dense"].loc[both],
                                    pv["sparse"].loc[both] - pl["sparse"].loc[both], len(both),
                                    metric=metric, method="vp-lp", level=level)
    out = pd.DataFrame(rows, columns=[c for c in cols if c not in ("class_name", "p_holm")])
    if out.empty:
        return pd.DataFrame(columns=cols)
    names = list(classes) if classes is not None else []
    out["class_name"] = [names[c] if c < len(names) else str(c) for c in out["class"]]
    out["p_holm"] = out.groupby(["method", "level"])["p"].transform(lambda s: pd.Series(holm(s.to_numpy()), s.index))
    return out[cols].reset_index(drop=True)


# --- exemplars ------------------------------------------------------------------------------------
def modal_prediction(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, over the runs of ``probs`` (R, N, K): the modal top-1 class and the share of runs
    that predict it. Ties in the vote go to the highest mean probability over the runs, then to the
    smallest class index (a run's own top-1 ties go to the smallest index, as numpy's argmax)."""
    r, n, k = probs.shape
    votes = np.bincount((np.arange(n) * k + probs.argmax(-1)).ravel(), minlength=n * k).reshape(n, k)
    tied = votes == votes.max(axis=1, keepdims=True)
    modal = np.argmax(np.where(tied, probs.mean(axis=0), -1.0), axis=1)  # argmax: first (smallest) of equals
    return modal, votes[np.arange(n), modal] / max(r, 1)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n (exactly 0 / 1 at k = 0 / n)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else float(max(0.0, centre - half))), (1.0 if k == n else float(min(1.0, centre + half)))


IMAGE_COLUMNS = ["method", "image", "true", "dense_pred", "dense_share", "sparse_pred", "sparse_share",
                 "p_true_dense", "p_true_sparse", "shift", "exemplar", "kind"]


def exemplars(runs: pd.DataFrame, probs: np.ndarray, labels, method: str, level: int,
              arm: str = "ticket") -> tuple[pd.DataFrame, dict]:
    """(one row per test image, summary) for ``method`` at (arm, level) vs its dense level 0, over
    the (family, seed) replicates that have both. Rows: the modal predictions and their vote
    shares, the mean true-class probability at both and its shift, ``exemplar`` and ``kind``."""
    labels = check_labels(probs, labels) if len(runs) else np.asarray(labels, dtype=np.int64)
    sel = runs[runs["method"] == method]
    dense = sel[(sel["arm"] == "ticket") & (sel["level"] == 0)]
    sparse = sel[(sel["arm"] == arm) & (sel["level"] == int(level))]
    key = lambda part: list(zip(part["family"], part["seed"]))  # noqa: E731
    common = set(key(dense)) & set(key(sparse))
    pick = lambda part: [i for k, i in sorted(zip(key(part), part.index)) if k in common]  # noqa: E731
    d_idx, s_idx = pick(dense), pick(sparse)  # aligned: the i-th dense and sparse runs are one (family, seed)
    summary = {"method": method, "level": int(level), "arm": arm, "n_pairs": len(common), "n_test": len(labels)}
    if not common:
        return pd.DataFrame(columns=IMAGE_COLUMNS), {**summary, "n_exemplars": 0, "fraction": float("nan"),
                                                      "ci_low": float("nan"), "ci_high": float("nan")}
    n = len(labels)
    pd_dense, pd_sparse = probs[d_idx], probs[s_idx]
    (m_dense, sh_dense), (m_sparse, sh_sparse) = modal_prediction(pd_dense), modal_prediction(pd_sparse)
    p_dense, p_sparse = pd_dense[:, np.arange(n), labels].mean(0), pd_sparse[:, np.arange(n), labels].mean(0)
    flipped = m_dense != m_sparse
    dense_ok, sparse_ok = m_dense == labels, m_sparse == labels
    kind = np.where(~flipped, "", np.where(dense_ok, "broken", np.where(sparse_ok, "fixed", "hard")))
    images = pd.DataFrame({"method": method, "image": np.arange(n), "true": labels, "dense_pred": m_dense,
                           "dense_share": sh_dense, "sparse_pred": m_sparse, "sparse_share": sh_sparse,
                           "p_true_dense": p_dense, "p_true_sparse": p_sparse, "shift": p_sparse - p_dense,
                           "exemplar": flipped, "kind": kind})
    k = int(flipped.sum())
    lo, hi = wilson(k, n)
    summary.update({"n_exemplars": k, "fraction": k / n, "ci_low": lo, "ci_high": hi,
                    **{f"half_{key}": v for key, v in split_half(pd_dense, pd_sparse).items()},
                    **{f"n_{name}": int((kind == name).sum()) for name in KINDS},
                    "n_dense_wrong": int((flipped & ~dense_ok).sum()),
                    "shift_exemplars": float(images.loc[flipped, "shift"].mean()) if k else float("nan"),
                    "shift_all": float(images["shift"].mean()),
                    "dense_accuracy": float(dense_ok.mean()), "sparse_accuracy": float(sparse_ok.mean())})
    return images, summary


def split_half(dense: np.ndarray, sparse: np.ndarray, draws: int = SPLITS, seed: int = 0) -> dict:
    """Run-to-run reference: the pairs split at random into two disjoint halves of equal size, the
    mean number of images whose modal prediction differs between the halves' dense runs
    (``dense_dense``: no sparsity involved), sparse runs (``sparse_sparse``), and one half's dense
    against the other half's sparse (``dense_sparse``: the same comparison, with sparsity). NaN
    with fewer than two pairs. ``dense[i]`` and ``sparse[i]`` must be one (family, seed) pair."""
    h = len(dense) // 2
    if h < 1:
        return {"dense_dense": float("nan"), "sparse_sparse": float("nan"), "dense_sparse": float("nan")}
    rng, counts = np.random.default_rng(seed), np.zeros(3)
    for _ in range(draws):
        order = rng.permutation(len(dense))
        a, b = order[:h], order[h:2 * h]
        da, db, sa, sb = (modal_prediction(x[i])[0] for x, i in ((dense, a), (dense, b), (sparse, a), (sparse, b)))
        counts += [(da != db).sum(), (sa != sb).sum(), ((da != sb).sum() + (sa != db).sum()) / 2]
    return dict(zip(("dense_dense", "sparse_sparse", "dense_sparse"), (counts / draws).tolist()))


def overlap(a, b) -> dict:
    """Venn counts of two exemplar sets (image indices): only in a, in both, only in b."""
    a, b = set(int(i) for i in a), set(int(i) for i in b)
    return {"a_only": len(a - b), "both": len(a & b), "b_only": len(b - a)}


def gallery_order(images: pd.DataFrame) -> pd.DataFrame:
    """Exemplars in the order a gallery shows them: the most consistent flips first (the sparse
    runs' agreement, then the dense runs'), then by image index."""
    ex = images[images["exemplar"]]
    return ex.sort_values(["sparse_share", "dense_share", "image"], ascending=[False, False, True], kind="stable")
