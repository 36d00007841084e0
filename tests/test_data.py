"""Datasets: N-shot sampling, fixed seeded splits, offline sources and clear missing-data errors."""

import numpy as np
import pytest
import torch

import lthvp.data.datasets as data_mod
from lthvp.data.datasets import (SPLIT_SEED, DataMissingError, load_dataset, resize, sample_shots, stratified_holdout,
                        to_uint8_rgb)


def _labels(per_class=(20, 20, 20, 20, 20), seed=0):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)])
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("shots", [1, 2, 5, 10])
def test_sample_shots_exact_counts(shots):
    labels = _labels()
    idx = sample_shots(labels, shots, seed=0)
    assert len(idx) == len(np.unique(idx)) == 5 * shots
    counts = np.bincount(labels[idx], minlength=5)
    assert (counts == shots).all()
    assert idx.min() >= 0 and idx.max() < len(labels)


def test_sample_shots_seeded():
    labels = _labels()
    a = sample_shots(labels, 3, seed=7)
    assert np.array_equal(a, sample_shots(labels, 3, seed=7))
    assert np.array_equal(a, sample_shots(torch.as_tensor(labels), 3, seed=7))
    assert not np.array_equal(a, sample_shots(labels, 3, seed=8))
    others = [sample_shots(labels, 3, seed=s) for s in range(8, 12)]
    assert all(not np.array_equal(a, o) for o in others)


def test_sample_shots_full_and_errors():
    labels = _labels((20, 20, 2, 20))
    assert np.array_equal(sample_shots(labels, "full", seed=0), np.arange(len(labels)))
    assert np.array_equal(sample_shots(labels, "full", seed=5), np.arange(len(labels)))
    assert len(sample_shots(labels, 2, seed=0)) == 8
    with pytest.raises(ValueError, match=r"class 2 has only 2"):
        sample_shots(labels, 5, seed=0)


def test_stratified_holdout():
    labels = _labels((30, 10, 50))
    kept, held = stratified_holdout(labels, 0.2, seed=1)
    assert len(np.intersect1d(kept, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(labels)))
    assert list(np.bincount(labels[held])) == [6, 2, 10]
    k2, h2 = stratified_holdout(labels, 0.2, seed=1)
    assert np.array_equal(kept, k2) and np.array_equal(held, h2)
    _, h3 = stratified_holdout(labels, 0.2, seed=2)
    assert not np.array_equal(held, h3)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_splits_disjoint_and_match_the_seeded_holdouts(digits):
    from sklearn.datasets import load_digits

    d = load_digits()
    assert digits.num_classes == 10 and digits.classes == [str(i) for i in range(10)]
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    rest, test = stratified_holdout(d.target, 0.30, SPLIT_SEED)
    keep, val = stratified_holdout(d.target[rest], 0.15, SPLIT_SEED)
    train_idx, val_idx = rest[keep], rest[val]
    # index-level disjointness, covering everything
    all_idx = np.concatenate([train_idx, val_idx, test])
    assert len(np.unique(all_idx)) == len(all_idx) == 1797
    # the loaded splits are exactly those indices
    images = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8))
    for split, idx in ((digits.train, train_idx), (digits.val, val_idx), (digits.test, test)):
        assert torch.equal(split.y, torch.as_tensor(d.target[idx]))
        assert torch.equal(split.x[:, 0], images[idx])
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (3, 8, 8)
        assert torch.equal(split.x[:, 0], split.x[:, 2])
    # every class in every split
    for split in (digits.train, digits.val, digits.test):
        assert set(split.y.tolist()) == set(range(10))
    assert 500 <= len(digits.test) <= 560 and 150 <= len(digits.val) <= 210


def test_digits_val_test_fixed_and_shots_come_from_train(digits):
    data_mod._LOADED.clear()
    again = load_dataset("digits")
    assert again is not digits
    for a, b in ((digits.val, again.val), (digits.test, again.test), (digits.train, again.train)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    # a run's seed only changes which training images it sees; val/test are never sampled
    for seed in range(3):
        idx = sample_shots(digits.train.y.numpy(), 5, seed)
        assert idx.max() < len(digits.train)
        assert (np.bincount(digits.train.y.numpy()[idx]) == 5).all()
    assert load_dataset("digits") is again  # memoised in-process


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet-22k")


def test_missing_mnist_names_root_and_download_switch(tmp_path):
    with pytest.raises(DataMissingError) as err:
        load_dataset("mnist", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg
    assert "--download" in msg and "LTHVP_DOWNLOAD" in msg
    assert isinstance(err.value, RuntimeError)


def test_missing_mnist_respects_env_download_default(tmp_path, monkeypatch):
    monkeypatch.delenv("LTHVP_DOWNLOAD", raising=False)
    monkeypatch.setenv("LTHVP_DATA", str(tmp_path / "data"))
    with pytest.raises(DataMissingError, match="MNIST"):
        load_dataset("kmnist")


def test_missing_fashion_mnist_names_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION", tmp_path / "no-such-dir")
    root = tmp_path / "root"
    with pytest.raises(DataMissingError) as err:
        load_dataset("fashion_mnist", root=root, download=False)
    msg = str(err.value)
    assert "dataset-fashion-mnist" in msg
    assert str(root / "FashionMNIST") in msg and "--download" in msg


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def test_fashion_mnist_from_user_root_idx_files(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION", tmp_path / "no-such-dir")
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, size=(100, 28, 28))
    train_y = np.repeat(np.arange(10), 10)
    test_x = rng.integers(0, 256, size=(30, 28, 28))
    test_y = np.repeat(np.arange(10), 3)
    _write_idx(raw / "train-images-idx3-ubyte", train_x)
    _write_idx(raw / "train-labels-idx1-ubyte", train_y)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    data = load_dataset("fashion_mnist", root=tmp_path / "root", download=False)
    assert data.num_classes == 10 and "Ankle boot" in data.classes
    assert len(data.train) + len(data.val) == 100 and len(data.test) == 30
    assert len(data.val) == 10  # one per class held out for validation
    assert torch.equal(data.test.x[:, 1], torch.from_numpy(test_x.astype(np.uint8)))
    assert torch.equal(data.test.y, torch.from_numpy(test_y))


def test_to_uint8_rgb_and_resize():
    gray = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    t = to_uint8_rgb(gray)
    assert t.shape == (2, 3, 4, 4) and t.dtype == torch.uint8 and torch.equal(t[:, 2], torch.from_numpy(gray))
    hwc = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    hwc[..., 1] = 7
    assert to_uint8_rgb(hwc)[:, 1].eq(7).all()
    with pytest.raises(ValueError):
        to_uint8_rgb(np.zeros((2, 4, 4, 5), dtype=np.uint8))
    r = resize(t, 8)
    assert r.shape == (2, 3, 8, 8) and r.dtype == torch.float32
    assert float(r.min()) >= 0.0 and float(r.max()) <= 1.0
    same = resize(t, 4)
    torch.testing.assert_close(same, t.float() / 255.0)


def test_catalog_names_every_registered_target():
    """The torch-free catalog the dashboard offers matches the dataset registry."""
    from lthvp.data.catalog import GENERATED_SOURCES, TARGETS
    from lthvp.data.datasets import registered

    assert set(TARGETS["mini"]) | set(TARGETS["paper"]) | set(GENERATED_SOURCES) == set(registered())


def test_fashion_mnist_1k_is_a_fixed_stratified_tenth_of_the_test_split():
    from lthvp.data.datasets import load_dataset

    full, small = load_dataset("fashion_mnist"), load_dataset("fashion_mnist_1k")
    assert len(small.test) == 1000 and np.bincount(small.test.y.numpy()).tolist() == [100] * 10
    assert torch.equal(small.train.y, full.train.y) and torch.equal(small.val.y, full.val.y)
    rows = {bytes(img.numpy()) for img in full.test.x}
    assert all(bytes(img.numpy()) in rows for img in small.test.x[:50])  # drawn from the official test split
    assert torch.equal(load_dataset("fashion_mnist_1k").test.x, small.test.x)  # the same subset every time
