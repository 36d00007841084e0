"""Prompts trained together on one frozen model give the outcomes they give alone."""

from __future__ import annotations

import numpy as np
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


def test_run_group_stores_what_separate_runs_store(tmp_path):
    """The sweep's grouped path: the seeds of one cell on the shipped legacy family, trained
    together, give the records separate runs give (same mapping histories, rounds and steps;
    probabilities within 1e-4), and each record says it shared its training."""
    from lthvp.compute.runner import group_key, run, run_group
    from lthvp.results.config import RunConfig
    from lthvp.results.predictions import decode_probs
    from lthvp.results.store import ResultStore

    cfgs = [RunConfig(family=None, method="vp", shots=2, seed=s, steps=12, batch_size=8) for s in (0, 1, 2)]
    assert len({group_key(c) for c in cfgs}) == 1
    assert group_key(cfgs[0].replace(method="lp")) is None and group_key(cfgs[0].replace(shots="full")) is None
    store = ResultStore(tmp_path / "grouped")
    together = run_group(cfgs, store)
    for cfg, grouped in zip(cfgs, together):
        alone = run(cfg).record
        g = grouped.record
        assert g["hash"] == alone["hash"] and store.get(g["hash"]) is not None
        assert g["mapping_history"] == alone["mapping_history"]
        assert (g["best_epoch"], g["steps"], g["mapping"]) == (alone["best_epoch"], alone["steps"], alone["mapping"])
        # stored probabilities are float16 (spacing 4.9e-4 near 1): equal to that resolution; the fp32
        # outcomes agree within 1e-4 (test_a_group_agrees_with_separate_runs)
        assert np.allclose(decode_probs(g["predictions"]["test"]), decode_probs(alone["predictions"]["test"]), atol=1e-3)
        assert g["metrics"]["accuracy"] == alone["metrics"]["accuracy"]
        assert g["timings"]["group_size"] == 3 and "group_size" not in alone["timings"]
    with pytest.raises(ValueError, match="differ only in their seed"):
        run_group([cfgs[0], cfgs[0].replace(level=1)])


def test_batches_gather_the_seeds_of_a_cell_in_request_order():
    from lthvp.compute.runner import batches
    from lthvp.results.config import RunConfig

    vp = [RunConfig(family=0, method="vp", shots=5, seed=s) for s in range(5)]
    lp = [RunConfig(family=0, method="lp", shots=5, seed=s) for s in range(2)]
    other = [RunConfig(family=0, method="vp", shots=5, level=2, seed=s) for s in range(2)]
    full = [RunConfig(family=0, method="vp", shots="full", seed=s) for s in range(2)]
    out = batches([vp[0], lp[0], other[0], vp[1], vp[2], lp[1], other[1], vp[3], vp[4], *full], max_group=3)
    assert out == [[vp[0], vp[1], vp[2]], [lp[0]], [other[0], other[1]], [lp[1]], [vp[3], vp[4]], [full[0]], [full[1]]]
