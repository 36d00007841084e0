"""Prompts trained together on one frozen model give the outcomes they give alone."""

from __future__ import annotations

import pytest
import torch

from lthvp.adapt.prompting import PadPrompt, VPSettings
from lthvp.adapt.vp_training import PromptJob, train_vp, train_vp_group
from lthvp.tickets.models import CifarResNet, freeze


def _model():
    torch.manual_seed(0)
    model = CifarResNet(20, 16)
    for m in model.modules():  # non-trivial BatchNorm statistics, as a trained model has
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return freeze(model)


def _job(seed: int, settings: VPSettings, n_train: int = 24) -> PromptJob:
    g = torch.Generator().manual_seed(100 + seed)  # each member its own data, as seeds' shot samples are
    x, y = torch.rand(n_train, 3, 20, 20, generator=g), torch.arange(n_train) % 4
    vx, vy = torch.rand(16, 3, 20, 20, generator=g), torch.arange(16) % 4
    tx = torch.rand(150, 3, 20, 20, generator=g)  # > one evaluation chunk of 128
    return PromptJob(PadPrompt(32, 20, (0.5,) * 3, (0.25,) * 3), (x, y), (vx, vy), tx,
                     VPSettings(**{**settings.__dict__, "seed": seed}))


CASES = {
    "ilm, 4 rounds": VPSettings(lr=0.3, batch_size=8, steps=12),
    "flm, hungarian": VPSettings(lr=0.3, batch_size=8, steps=12, mapping="flm", assignment="hungarian"),
    "mapping only": VPSettings(lr=0.0, batch_size=8, steps=0),
}


@pytest.mark.parametrize("case", CASES)
def test_a_group_agrees_with_separate_runs(case):
    model, settings = _model(), CASES[case]
    alone = []
    for seed in (0, 1, 2):
        job = _job(seed, settings)
        alone.append(train_vp(model, job.prompt, job.train, job.val, job.test_x, 4, job.settings))
    together = train_vp_group(model, [_job(seed, settings) for seed in (0, 1, 2)], 4)
    for a, b in zip(alone, together):
        assert a.mapping_history == b.mapping_history
        assert (a.best_epoch, a.steps, a.mapping) == (b.best_epoch, b.steps, b.mapping)
        assert torch.allclose(a.test_probs, b.test_probs, atol=1e-4, rtol=0)
        assert torch.allclose(a.val_probs, b.val_probs, atol=1e-4, rtol=0)
        assert [r["val_acc"] for r in a.curves] == [r["val_acc"] for r in b.curves]
    if case == "ilm, 4 rounds":  # the prompts learned, and differently (their own seeds and data)
        assert len(together[0].curves) > 1 and not torch.equal(together[0].test_probs, together[1].test_probs)


def test_a_group_of_one_is_the_single_run_exactly():
    model = _model()
    job = _job(0, CASES["ilm, 4 rounds"])
    alone = train_vp(model, job.prompt, job.train, job.val, job.test_x, 4, job.settings)
    (grouped,) = train_vp_group(model, [_job(0, CASES["ilm, 4 rounds"])], 4)
    assert torch.equal(alone.test_probs, grouped.test_probs)


def test_prompts_that_cannot_step_together_are_refused():
    model, settings = _model(), CASES["ilm, 4 rounds"]
    with pytest.raises(ValueError, match="equal settings"):
        train_vp_group(model, [_job(0, settings), _job(1, VPSettings(lr=0.1, batch_size=8, steps=12))], 4)
    with pytest.raises(ValueError, match="training-set sizes"):
        train_vp_group(model, [_job(0, settings), _job(1, settings, n_train=32)], 4)
