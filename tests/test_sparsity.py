"""Masks and global magnitude pruning on a real ResNet-20; mask enforcement under training;
random pruning at equal sparsity; the ticket file format."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lthvp.tickets.models import build_model
from lthvp.tickets.sparsity import (apply_masks, assert_masked, dense_masks, global_magnitude_prune, prunable_names,
                            random_masks_like, remaining_fraction, sparsity_report)


@pytest.fixture
def resnet20():
    torch.manual_seed(0)
    return build_model("resnet20")


def _n_prunable(model):
    params = dict(model.named_parameters())
    return sum(params[n].numel() for n in prunable_names(model))


def test_prunable_names_are_conv_and_linear_weights(resnet20):
    names = prunable_names(resnet20)
    expected = [f"{m}.weight" for m, mod in resnet20.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    assert names == expected
    assert names[0] == "conv1.weight" and names[-1] == "fc.weight"
    assert len(names) == 22  # 19 3x3 convs (stem + 18 in blocks) + 2 shortcut 1x1 convs + fc
    assert _n_prunable(resnet20) == 270896
    assert not any("bn" in n or n.endswith("bias") for n in names)


def test_iterative_pruning_keeps_0p8_to_the_L(resnet20):
    total = _n_prunable(resnet20)
    masks, alive = None, total
    for level in range(1, 6):
        masks = global_magnitude_prune(resnet20, masks, fraction=0.2)
        alive = alive - round(0.2 * alive)
        kept = int(sum(m.sum() for m in masks.values()))
        assert kept == alive  # the documented exact count
        assert abs(kept - 0.8 ** level * total) <= 3  # 0.8^L of all prunable weights, up to rounding
        assert remaining_fraction(masks) == pytest.approx(0.8 ** level, abs=3 / total)
        assert set(masks) == set(prunable_names(resnet20))
        assert all(set(torch.unique(m).tolist()) <= {0.0, 1.0} for m in masks.values())
    # the model is untouched by pruning
    assert remaining_fraction(resnet20) == 1.0


def test_smallest_magnitudes_pruned_globally(resnet20):
    params = dict(resnet20.named_parameters())
    masks = global_magnitude_prune(resnet20, None, fraction=0.2)
    pruned = torch.cat([params[n].detach().abs()[m == 0] for n, m in masks.items()])
    kept = torch.cat([params[n].detach().abs()[m == 1] for n, m in masks.items()])
    assert pruned.numel() == round(0.2 * _n_prunable(resnet20))
    assert pruned.max() <= kept.min()
    # global, not layer-wise: densities differ a lot across layers (init scale depends on fan-in)
    densities = [float(m.mean()) for m in masks.values()]
    assert max(densities) - min(densities) > 0.15  # layer-wise pruning would give 0.8 everywhere
    assert max(abs(d - 0.8) for d in densities) > 0.1
    # threshold equals the global 20% quantile of |w|
    all_w = torch.cat([params[n].detach().abs().flatten() for n in masks])
    k = round(0.2 * all_w.numel())
    assert pruned.max() == torch.sort(all_w).values[k - 1]

    # second round: only alive weights are ranked; pruned stay pruned; new prunes are the smallest alive
    masks2 = global_magnitude_prune(resnet20, masks, fraction=0.2)
    for n in masks:
        assert bool((masks2[n] <= masks[n]).all())
    newly = torch.cat([params[n].detach().abs()[(masks[n] == 1) & (masks2[n] == 0)] for n in masks])
    still = torch.cat([params[n].detach().abs()[masks2[n] == 1] for n in masks])
    assert newly.numel() == round(0.2 * kept.numel())
    assert newly.max() <= still.min()


def test_ties_are_counted_exactly():
    model = nn.Sequential(nn.Linear(10, 10, bias=False), nn.Linear(10, 5, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    masks = global_magnitude_prune(model, None, fraction=0.2)
    assert int(sum(m.sum() for m in masks.values())) == 150 - 30


def test_ignore_list_respected(resnet20):
    ignore = ("conv1.weight", "fc.weight")
    masks = global_magnitude_prune(resnet20, None, fraction=0.2, ignore=ignore)
    assert "conv1.weight" not in masks and "fc.weight" not in masks
    assert len(masks) == 20
    params = dict(resnet20.named_parameters())
    n_masked = sum(m.numel() for m in masks.values())
    assert int(sum(m.sum() for m in masks.values())) == n_masked - round(0.2 * n_masked)
    apply_masks(resnet20, masks)
    assert bool((params["conv1.weight"] != 0).all()) and bool((params["fc.weight"] != 0).all())
    # model view counts every prunable weight, ignored layers included (dense there)
    total = _n_prunable(resnet20)
    kept_model = n_masked - round(0.2 * n_masked) + params["conv1.weight"].numel() + params["fc.weight"].numel()
    assert remaining_fraction(resnet20) == pytest.approx(kept_model / total, abs=1e-12)
    assert remaining_fraction(masks) == pytest.approx((n_masked - round(0.2 * n_masked)) / n_masked, abs=1e-12)
    assert remaining_fraction(resnet20) > remaining_fraction(masks)
    # ignore also drops a layer from masks handed in
    masks2 = global_magnitude_prune(resnet20, dense_masks(resnet20), 0.2, ignore=["fc.weight"])
    assert "fc.weight" not in masks2 and "conv1.weight" in masks2
    with pytest.raises(ValueError):
        global_magnitude_prune(resnet20, None, 0.2, ignore=["nope.weight"])


def test_remaining_fraction_model_equals_masks_after_apply(resnet20):
    masks = None
    for _ in range(3):
        masks = global_magnitude_prune(resnet20, masks, 0.2)
    apply_masks(resnet20, masks)
    assert remaining_fraction(resnet20) == remaining_fraction(masks)
    assert remaining_fraction(resnet20) == pytest.approx(0.512, abs=1e-5)
    report = sparsity_report(resnet20, masks, "conv1.weight", "fc.weight")
    assert report["remaining"]["all_prunable"] == pytest.approx(remaining_fraction(masks))
    assert sum(r["kept"] for r in report["layers"]) == int(sum(m.sum() for m in masks.values()))


def test_bad_fraction_and_mismatched_masks(resnet20):
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            global_magnitude_prune(resnet20, None, bad)
    with pytest.raises(ValueError):
        global_magnitude_prune(resnet20, {"nope.weight": torch.ones(3)}, 0.2)
    with pytest.raises(ValueError):
        global_magnitude_prune(resnet20, {"fc.weight": torch.ones(3, 3)}, 0.2)
    with pytest.raises(ValueError):
        remaining_fraction({})
    # fraction 0 keeps everything
    assert remaining_fraction(global_magnitude_prune(resnet20, None, 0.0)) == 1.0


def _sgd_step(model, opt, x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_masks_survive_training_when_reapplied(resnet20):
    masks = global_magnitude_prune(resnet20, None, 0.5)
    apply_masks(resnet20, masks)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    opt = torch.optim.SGD(resnet20.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    resnet20.train()
    before = {n: p.detach().clone() for n, p in resnet20.named_parameters()}
    for _ in range(3):
        _sgd_step(resnet20, opt, x, y)
        apply_masks(resnet20, masks)
    params = dict(resnet20.named_parameters())
    for n, m in masks.items():
        assert bool((params[n][m == 0] == 0).all())
    assert_masked(resnet20, masks)
    assert remaining_fraction(resnet20) == pytest.approx(remaining_fraction(masks), abs=1e-12)
    # the kept weights did train
    assert any(not torch.equal(before[n], params[n]) for n in masks)

    # one step without re-applying densifies (momentum + weight decay + gradients) -> caught
    _sgd_step(resnet20, opt, x, y)
    assert remaining_fraction(resnet20) > remaining_fraction(masks) + 0.1
    with pytest.raises(AssertionError, match="not enforced"):
        assert_masked(resnet20, masks)


def test_random_masks_like_keeps_layer_counts(resnet20):
    masks = global_magnitude_prune(resnet20, None, 0.2)
    masks = global_magnitude_prune(resnet20, masks, 0.2)
    rand = random_masks_like(masks, seed=1)
    assert set(rand) == set(masks)
    for n in masks:
        assert rand[n].shape == masks[n].shape
        assert int(rand[n].sum()) == int(masks[n].sum())
        assert set(torch.unique(rand[n]).tolist()) <= {0.0, 1.0}
    assert any(not torch.equal(rand[n], masks[n]) for n in masks)
    again = random_masks_like(masks, seed=1)
    assert all(torch.equal(again[n], rand[n]) for n in masks)
    other = random_masks_like(masks, seed=2)
    assert any(not torch.equal(other[n], rand[n]) for n in masks)
    assert remaining_fraction(rand) == remaining_fraction(masks)


def test_ticket_file_roundtrip(tmp_path, resnet20):
    from lthvp.tickets.ticketfile import is_ticket_file, load_ticket_file, save_ticket_file

    masks = global_magnitude_prune(resnet20, None, 0.36)
    apply_masks(resnet20, masks)
    path = tmp_path / "t.safetensors"
    save_ticket_file(path, resnet20, masks, "resnet20", {"level": 2})
    assert is_ticket_file(path)
    model, masks2, extra = load_ticket_file(path)
    assert extra == {"level": 2}
    assert set(masks2) == set(masks) and all(torch.equal(masks2[n], masks[n]) for n in masks)
    ref = resnet20.state_dict()
    got = model.state_dict()
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert not is_ticket_file(bad)


def test_shipped_family_level_0_is_dense():
    from lthvp.results.presets import MINI
    from lthvp.tickets.families import TicketFamily

    family = TicketFamily(MINI.family_dir)
    model, masks = family.load(0)
    assert remaining_fraction(masks) == 1.0
    assert_masked(model, masks)
    with pytest.raises(FileNotFoundError, match="level 99"):
        family.load(99)
