"""Visual prompting: pad-prompt geometry, a frozen backbone stays bit-identical, label mapping
wiring of the VP loop."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lthvp.adapt.prompting import PadPrompt, VPSettings, source_logits
from lthvp.adapt.vp_training import train_vp
from lthvp.tickets.models import FASHION_MEAN, FASHION_STD, build_model, freeze

MEAN = torch.tensor(FASHION_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(FASHION_STD).view(1, 3, 1, 1)


def _prompt(canvas=32, size=24):
    return PadPrompt(canvas, size, FASHION_MEAN, FASHION_STD)


@pytest.mark.parametrize("canvas,size,lo,hi", [(32, 24, 4, 4), (32, 21, 6, 5), (32, 32, 0, 0), (16, 1, 8, 7)])
def test_pad_prompt_mask_geometry(canvas, size, lo, hi):
    p = _prompt(canvas, size)
    assert (p.pad_lo, p.pad_hi) == (lo, hi) and lo + size + hi == canvas
    mask = p.mask[0, 0]
    assert mask.shape == (canvas, canvas)
    inner = mask[lo:lo + size, lo:lo + size]
    assert bool((inner == 0).all())
    assert int(mask.sum()) == canvas * canvas - size * size
    border = mask.clone()
    border[lo:lo + size, lo:lo + size] = 1
    assert bool((border == 1).all())  # everything outside the image is 1
    assert p.program.shape == (3, canvas, canvas) and p.program.requires_grad


def test_image_region_is_normalised_input_and_border_is_grey_at_init():
    p = _prompt(32, 24)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 24, generator=gen)
    prompted = p.prompted(x)
    out = p(x)
    assert out.shape == (2, 3, 32, 32)
    assert torch.equal(prompted[..., 4:28, 4:28], x)
    torch.testing.assert_close(out[..., 4:28, 4:28], (x - MEAN) / STD, rtol=0, atol=1e-6)
    border = p.mask.expand(2, 3, 32, 32) == 1
    assert bool((prompted[border] == 0.5).all())  # zero init = sigmoid(0) = grey, before normalisation
    grey = ((0.5 - MEAN) / STD).expand(2, 3, 32, 32)
    torch.testing.assert_close(out[border], grey[border], rtol=0, atol=1e-6)
    img = p.border_image()
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
    assert (img[4:28, 4:28] == 0).all() and (img[:4] == 128).all() and (img[:, 28:] == 128).all()


def test_trained_program_never_touches_the_image():
    p = _prompt(32, 20)
    with torch.no_grad():
        p.program.normal_(0, 3)
    x = torch.rand(3, 3, 20, 20)
    lo = p.pad_lo
    torch.testing.assert_close(p(x)[..., lo:lo + 20, lo:lo + 20], (x - MEAN) / STD, rtol=0, atol=1e-6)
    border = p.mask.expand(3, 3, 32, 32) == 1
    expected = torch.sigmoid(p.program).expand(3, 3, 32, 32)
    torch.testing.assert_close(p.prompted(x)[border], expected[border].detach())


@pytest.mark.parametrize("shape", [(2, 3, 20, 20), (2, 1, 24, 24), (2, 3, 24, 32), (2, 3, 32, 32)])
def test_wrong_input_shape_raises(shape):
    with pytest.raises(ValueError, match="expected images"):
        _prompt(32, 24)(torch.rand(*shape))


def test_image_larger_than_canvas_raises():
    with pytest.raises(ValueError):
        _prompt(32, 40)
    with pytest.raises(ValueError):
        _prompt(32, 0)


def _tiny_task(n_train=48, n_val=20, n_test=16, n_target=5, size=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n_train, 3, size, size, generator=gen)
    y = torch.arange(n_train) % n_target
    vx = torch.rand(n_val, 3, size, size, generator=gen)
    vy = torch.arange(n_val) % n_target
    tx = torch.rand(n_test, 3, size, size, generator=gen)
    return (x, y), (vx, vy), tx


@pytest.mark.parametrize("mapping", ["ilm", "flm", "rlm"])
def test_vp_leaves_backbone_bit_identical(mapping):
    torch.manual_seed(0)
    model = freeze(build_model("resnet20"))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}  # parameters AND buffers
    n_buffers = sum(1 for _ in model.buffers())
    assert n_buffers > 0 and any("running_mean" in k for k in before)
    prompt = _prompt(32, 24)
    train, val, test_x = _tiny_task()
    seen = []
    out = train_vp(model, prompt, train, val, test_x, 5,
                   VPSettings(epochs=2, lr=0.05, batch_size=16, mapping=mapping, seed=0), progress=seen.append)
    after = model.state_dict()
    assert set(after) == set(before)
    for k in before:
        assert torch.equal(after[k], before[k]), f"{k} changed during VP"
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    # the prompt did train (so the check above is not vacuous)
    assert not torch.equal(prompt.program.detach(), torch.zeros_like(prompt.program))
    assert len(out.curves) == 2 and [r["epoch"] for r in seen] == [1, 2]
    assert out.train_images_seen == 2 * 48
    assert len(out.mapping_history) == 2
    assert len(set(out.mapping)) == 5 and all(0 <= s < 10 for s in out.mapping)
    if mapping == "flm":
        assert out.mapping_history[0] == out.mapping_history[1]
    assert out.best_epoch in (1, 2)
    assert out.mapping == out.mapping_history[out.best_epoch - 1]


def test_vp_probabilities_are_softmax_over_mapped_source_logits():
    torch.manual_seed(1)
    model = freeze(build_model("resnet20"))
    prompt = _prompt(32, 24)
    train, val, test_x = _tiny_task(seed=1)
    out = train_vp(model, prompt, train, val, test_x, 5, VPSettings(epochs=2, lr=0.05, batch_size=16, seed=1))
    assert out.test_probs.shape == (16, 5)
    torch.testing.assert_close(out.test_probs.sum(1), torch.ones(16))
    # prompt holds the chosen epoch's program; target t reads source logit mapping[t]
    expected = F.softmax(source_logits(model, prompt, test_x, 8)[:, out.mapping], dim=1)
    torch.testing.assert_close(out.test_probs, expected, rtol=0, atol=1e-6)
    assert out.prompt_image.shape == (32, 32, 3) and out.prompt_image.dtype == np.uint8


def test_vp_is_deterministic_per_seed():
    def once():
        torch.manual_seed(0)
        model = freeze(build_model("resnet20"))
        prompt = _prompt(32, 24)
        train, val, test_x = _tiny_task(n_train=24, n_val=10, n_test=8)
        torch.manual_seed(0)
        return train_vp(model, prompt, train, val, test_x, 5, VPSettings(epochs=1, batch_size=8, seed=3))

    a, b = once(), once()
    assert torch.equal(a.test_probs, b.test_probs) and a.mapping == b.mapping


@pytest.mark.slow
def test_fast_path_matches_plain_path_on_a_real_ticket():
    """BatchNorm folding, channels-last and the merged validation+mapping pass change only
    floating-point rounding: same mappings, same chosen epoch, same test predictions."""
    from lthvp.data.datasets import load_dataset, resize, sample_shots
    from lthvp.results.presets import MINI
    from lthvp.tickets.families import TicketFamily

    model, _ = TicketFamily(MINI.family_dir).load(4)
    freeze(model)
    data = load_dataset("digits")
    idx = torch.as_tensor(sample_shots(data.train.y.numpy(), 5, 0))
    x, y = resize(data.train.x[idx], 24), data.train.y[idx]
    val, test_x = (resize(data.val.x, 24), data.val.y), resize(data.test.x, 24)
    outs = []
    for fast in (False, True):
        torch.manual_seed(0)
        prompt = PadPrompt(32, 24, FASHION_MEAN, FASHION_STD)
        outs.append(train_vp(model, prompt, (x, y), val, test_x, 10, VPSettings(6, 0.01, 16, seed=0, fast=fast)))
    plain, fast = outs
    assert fast.mapping_history == plain.mapping_history
    assert fast.best_epoch == plain.best_epoch
    assert torch.equal(fast.test_probs.argmax(1), plain.test_probs.argmax(1))
    assert torch.allclose(fast.test_probs, plain.test_probs, atol=1e-4)
    assert [r["val_acc"] for r in fast.curves] == [r["val_acc"] for r in plain.curves]


def test_inference_passes_run_in_fp32_even_where_training_autocasts(monkeypatch):
    """The ILM counting pass, validation and test logits never enter autocast (bf16 flips argmax
    ties and moves ECE inputs); only the training step does. Forced on CPU by recording every
    autocast the VP code asks for."""
    import lthvp.adapt.vp_training as P

    calls = []
    real = P.autocast_for

    def spy(device, cpu_bf16=False):
        calls.append("train")
        return real(device, cpu_bf16)

    monkeypatch.setattr(P, "autocast_for", spy)
    seen_dtypes = []
    model, prompt = freeze(build_model("resnet20")), _prompt(32, 24)
    train, val, test_x = _tiny_task()
    hook = model.fc.register_forward_hook(lambda m, i, o: seen_dtypes.append((torch.is_grad_enabled(), o.dtype)))
    out = train_vp(model, prompt, train, val, test_x, 5, VPSettings(2, 0.01, 16, fast=False))
    hook.remove()
    inference = [d for grad, d in seen_dtypes if not grad]
    assert inference and all(d == torch.float32 for d in inference)
    assert len(calls) == len([1 for grad, _ in seen_dtypes if grad])  # autocast only around training forwards
    assert out.test_probs.dtype == torch.float32
