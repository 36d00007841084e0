"""Linear probing: training on cached features equals training through the frozen backbone;
the feature cache round-trips and recovers from corrupt files."""

import numpy as np
import pytest
import torch

from lthvp.adapt.probing import FeatureCache, LPSettings, extract_features, train_linear_head
from lthvp.tickets.models import FASHION_MEAN, FASHION_STD, build_model, freeze

MEAN = torch.tensor(FASHION_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(FASHION_STD).view(1, 3, 1, 1)


def prepare(x):
    return (x - MEAN) / STD


@pytest.fixture(scope="module")
def task():
    torch.manual_seed(0)
    model = freeze(build_model("resnet20"))
    gen = torch.Generator().manual_seed(0)
    n_target = 4
    x = torch.rand(64, 3, 32, 32, generator=gen)
    y = torch.arange(64) % n_target
    x[:, 0] += (y.float() / n_target).view(-1, 1, 1) * 0.5  # some class signal
    vx, vy = torch.rand(16, 3, 32, 32, generator=gen), torch.arange(16) % n_target
    tx = torch.rand(12, 3, 32, 32, generator=gen)
    return model, x, y, vx, vy, tx, n_target


def test_extract_features_shape_and_eval_mode(task):
    model, x, *_ = task
    model.train()  # extract_features must switch to eval (BatchNorm running stats)
    f_small_batches = extract_features(model, x, prepare, batch_size=7)
    assert not model.training
    assert f_small_batches.shape == (64, model.feature_dim) == (64, 64)
    with torch.no_grad():
        direct = model.features(prepare(x))
    torch.testing.assert_close(f_small_batches, direct, rtol=1e-5, atol=1e-5)
    freeze(model)


def test_lp_on_cached_features_equals_lp_through_backbone(task):
    model, x, y, vx, vy, tx, n_target = task
    settings = LPSettings(epochs=4, lr=0.01, batch_size=16, seed=3)
    cached = extract_features(model, x, prepare)
    val_f, test_f = extract_features(model, vx, prepare), extract_features(model, tx, prepare)

    a = train_linear_head(lambda idx: cached[idx], y, val_f, vy, test_f, 64, n_target, settings)
    calls = []

    def through_backbone(idx):
        calls.append(len(idx))
        return model.features(prepare(x[idx]))

    b = train_linear_head(through_backbone, y, val_f, vy, test_f, 64, n_target, settings)
    assert sum(calls) == 4 * 64  # really went through the backbone, every epoch
    assert a.best_epoch == b.best_epoch
    torch.testing.assert_close(a.head.weight, b.head.weight, rtol=0, atol=1e-5)
    torch.testing.assert_close(a.head.bias, b.head.bias, rtol=0, atol=1e-5)
    torch.testing.assert_close(a.test_probs, b.test_probs, rtol=0, atol=1e-5)
    for ra, rb in zip(a.curves, b.curves):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=1e-5)
    # the head learned something (not a trivially equal untrained pair)
    assert a.curves[-1]["train_loss"] < a.curves[0]["train_loss"]
    assert a.test_probs.shape == (12, n_target)
    torch.testing.assert_close(a.test_probs.sum(1), torch.ones(12))
    # the backbone is untouched
    assert all(p.grad is None for p in model.parameters())


def test_lp_picks_epoch_by_validation_and_is_seeded(task):
    model, x, y, vx, vy, tx, n_target = task
    feats = extract_features(model, x, prepare)
    vf, tf = extract_features(model, vx, prepare), extract_features(model, tx, prepare)
    s = LPSettings(epochs=3, batch_size=16, seed=0)
    a = train_linear_head(lambda i: feats[i], y, vf, vy, tf, 64, n_target, s)
    b = train_linear_head(lambda i: feats[i], y, vf, vy, tf, 64, n_target, s)
    assert torch.equal(a.test_probs, b.test_probs)
    best = max(a.curves, key=lambda r: (r["val_acc"], -r["val_nll"]))
    assert a.best_epoch == best["epoch"]
    c = train_linear_head(lambda i: feats[i], y, vf, vy, tf, 64, n_target, LPSettings(epochs=3, batch_size=16, seed=1))
    assert not torch.equal(a.test_probs, c.test_probs)


def test_feature_cache_roundtrip(tmp_path):
    cache = FeatureCache(tmp_path / "features")
    feats = torch.randn(10, 8)
    key = ("ticket:a", "digits", "train", "full:32:32")
    got = cache.get_or_compute(key, lambda: feats)
    assert torch.equal(got, feats)
    path = cache.path(*key)
    assert path.exists() and path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["features"], feats.numpy())

    def boom():
        raise AssertionError("should have been read from the cache")

    assert torch.equal(cache.get_or_compute(key, boom), feats)
    # any key part changes the file
    assert cache.path("ticket:a", "digits", "val", "full:32:32") != path
    assert cache.path("ticket:b", "digits", "train", "full:32:32") != path
    assert not list((tmp_path / "features").glob("*.tmp"))


@pytest.mark.parametrize("garbage", [b"", b"garbage, not an npz", b"PK\x03\x04truncated zip"])
def test_feature_cache_recovers_from_corrupt_file(tmp_path, garbage):
    cache = FeatureCache(tmp_path)
    key = ("t", "d", "train", "x")
    path = cache.path(*key)
    path.write_bytes(garbage)
    feats = torch.arange(12, dtype=torch.float32).view(3, 4)
    calls = []
    got = cache.get_or_compute(key, lambda: calls.append(1) or feats)
    assert calls == [1] and torch.equal(got, feats)
    with np.load(path, allow_pickle=False) as f:  # the file was rewritten and is valid now
        np.testing.assert_array_equal(f["features"], feats.numpy())


def test_feature_cache_recovers_from_npz_without_features(tmp_path):
    cache = FeatureCache(tmp_path)
    key = ("t", "d", "train", "x")
    np.savez(cache.path(*key), other=np.zeros(3))
    feats = torch.ones(2, 2)
    assert torch.equal(cache.get_or_compute(key, lambda: feats), feats)
