"""precision="bf16" is part of a run's identity and changes only VP's arithmetic, never the test pass."""

from __future__ import annotations

import pytest
import torch

from lthvp.adapt.prompting import PadPrompt, VPSettings
from lthvp.adapt.vp_training import train_vp
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve
from lthvp.tickets.models import CifarResNet, freeze


def test_precision_names_a_new_result_and_fp32_keeps_old_hashes():
    assert RunConfig(precision="fp32").hash() == RunConfig().hash() == "2c438d7a9c410334"
    assert RunConfig(precision="bf16").hash() != RunConfig().hash()
    with pytest.raises(ValueError, match="precision"):
        RunConfig(precision="fp16")
    with pytest.raises(ValueError, match="LP runs in fp32"):
        resolve(RunConfig(method="lp", precision="bf16", family=0))


def _vp(bf16: bool):
    torch.manual_seed(0)
    model = freeze(CifarResNet(20, 12))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 3, 24, 24, generator=g), torch.arange(40) % 4
    vx, vy = torch.rand(12, 3, 24, 24, generator=g), torch.arange(12) % 4
    prompt = PadPrompt(32, 24, (0.5,) * 3, (0.25,) * 3)
    seen = []
    original = torch.autocast.__init__

    def spy(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        seen.append(bool(enabled) and device_type == "cpu")
        original(self, device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    torch.autocast.__init__ = spy
    try:
        out = train_vp(model, prompt, (x, y), (vx, vy), vx, 4,
                       VPSettings(lr=0.1, batch_size=8, steps=10, bf16_passes=bf16, bf16_steps=bf16))
    finally:
        torch.autocast.__init__ = original
    return out, seen


def test_bf16_autocasts_steps_and_passes_and_leaves_the_test_pass_in_fp32():
    fp32, seen32 = _vp(False)
    bf16, seen16 = _vp(True)
    assert not any(seen32)
    assert any(seen16) and seen16[-1] is False  # the last pass (test) runs without autocast
    assert fp32.test_probs.dtype == bf16.test_probs.dtype == torch.float32
    assert not torch.equal(fp32.test_probs, bf16.test_probs)  # the arithmetic did change
