"""Ticket import for every supported format, from small files written here (ResNet-18,
random weights, pruned): same masks and weights back, right remaining fraction, strict errors."""

import pytest
import torch

from lthvp.tickets.models import build_model
from lthvp.tickets.sparsity import apply_masks, global_magnitude_prune, remaining_fraction
from lthvp.tickets.ticket_formats import load_ticket
from lthvp.tickets.ticket_formats import detect_format
from lthvp.tickets.ticketfile import save_ticket_file

ARCH = "resnet18"
IGNORE = ("conv1.weight", "fc.weight")  # CV_LTH convention: stem and head dense


@pytest.fixture(scope="module")
def ticket():
    torch.manual_seed(0)
    model = build_model(ARCH).eval()
    masks = global_magnitude_prune(model, None, fraction=1 - 0.8 ** 3, ignore=IGNORE)
    apply_masks(model, masks)
    return model, masks


def _same(model, masks, ref_model, ref_masks):
    assert set(masks) == set(ref_masks)
    for n in ref_masks:
        assert torch.equal(masks[n], ref_masks[n]), n
    ref = ref_model.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def _cvlth(model, masks):
    state = {}
    for k, v in model.state_dict().items():
        if k in masks:
            state["module." + k[:-len("weight")] + "weight_orig"] = v.clone()
            state["module." + k[:-len("weight")] + "weight_mask"] = masks[k].clone()
        else:
            state["module." + k] = v
    return {"epoch": 3, "state": 3, "arch": "resnet18", "state_dict": state, "best_acc1": 1.0}


def test_prune_format_wrapped_with_module_prefix(tmp_path, ticket):
    model, masks = ticket
    path = tmp_path / "2checkpoint.pth.tar"
    torch.save(_cvlth(model, masks), path)
    assert detect_format(path) == "prune"
    got, got_masks = load_ticket(path, arch=ARCH)
    _same(got, got_masks, model, masks)
    assert remaining_fraction(got_masks) == pytest.approx(0.8 ** 3, abs=1e-6)


def test_openlth_mask_beside_weights(tmp_path, ticket):
    model, masks = ticket
    d = tmp_path / "level_3" / "main"
    d.mkdir(parents=True)
    torch.save({"model." + k: v for k, v in model.state_dict().items()}, d / "model_ep90_it0.pth")
    torch.save({"model." + k: v.int() for k, v in masks.items()}, d / "mask.pth")
    assert detect_format(d / "model_ep90_it0.pth") == "openlth"
    got, got_masks = load_ticket(d / "model_ep90_it0.pth", arch=ARCH)
    _same(got, got_masks, model, masks)


def test_misra_checkpoint_and_mask(tmp_path, ticket):
    model, masks = ticket
    ck, mk = tmp_path / "resnet18_dyn4_3_checkpoint.pth", tmp_path / "resnet18_dyn4_3_mask.pth"
    torch.save({"module.model." + k: v for k, v in model.state_dict().items()}, ck)
    torch.save({"model." + k: v for k, v in masks.items()}, mk)
    got, got_masks = load_ticket(ck, arch=ARCH)  # sibling found by name
    _same(got, got_masks, model, masks)
    got, got_masks = load_ticket(ck, mask_path=mk, arch=ARCH)
    _same(got, got_masks, model, masks)


def test_plain_zero_weight_checkpoint(tmp_path, ticket):
    model, masks = ticket
    path = tmp_path / "sparse.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    got, got_masks = load_ticket(path, arch=ARCH)
    assert "conv1.weight" not in got_masks and "fc.weight" not in got_masks  # dense stem/head: unpruned
    _same(got, got_masks, model, masks)


def test_lthvp_ticket_file(tmp_path, ticket):
    model, masks = ticket
    path = tmp_path / "level_3.safetensors"
    save_ticket_file(path, model, masks, ARCH)
    got, got_masks = load_ticket(path)
    _same(got, got_masks, model, masks)


def test_missing_extra_and_wrong_shape_keys(tmp_path, ticket):
    model, masks = ticket
    state = dict(model.state_dict())
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(3)
    state["layer2.0.bn1.bias"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        load_ticket(path, arch=ARCH)
    msg = str(err.value)
    assert "layer1.0.conv1.weight" in msg and "extra.weight" in msg and "layer2.0.bn1.bias" in msg


def test_wrong_architecture_and_bad_masks(tmp_path, ticket):
    model, masks = ticket
    path = tmp_path / "r18.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match="missing keys"):
        load_ticket(path, arch="resnet50")
    ck = tmp_path / "m_checkpoint.pth"
    torch.save(model.state_dict(), ck)
    torch.save({"layer1.0.bn1.weight": torch.ones(64), "layer1.0.conv1.weight": torch.ones(3, 3)},
               tmp_path / "m_mask.pth")
    with pytest.raises(ValueError) as err:
        load_ticket(ck, arch=ARCH)
    assert "layer1.0.bn1.weight" in str(err.value) and "layer1.0.conv1.weight" in str(err.value)


def test_orphan_mask_and_missing_file(tmp_path, ticket):
    model, masks = ticket
    state = _cvlth(model, masks)["state_dict"]
    state.pop("module.layer1.0.conv1.weight_orig")
    torch.save(state, tmp_path / "orphan.pth")
    with pytest.raises(ValueError, match="layer1.0.conv1"):
        load_ticket(tmp_path / "orphan.pth", arch=ARCH)
    with pytest.raises(FileNotFoundError):
        load_ticket(tmp_path / "nope.pth", arch=ARCH)
