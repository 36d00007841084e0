"""The v2 transfer protocol: what a run on a replicated family resolves to, and what the legacy
single family keeps (so its stored records resolve to themselves)."""

from __future__ import annotations

import numpy as np
import pytest

from lthvp.adapt.prompting import VPSettings, plan_rounds
from lthvp.data.datasets import sample_fewshot_val, sample_shots
from lthvp.results.config import RunConfig
from lthvp.results.presets import MINI, resolve


def test_family_runs_get_the_step_budget_fewshot_validation_and_the_chosen_lr():
    vp = resolve(RunConfig(family=1, method="vp", shots=5))
    assert (vp.steps, vp.epochs, vp.val_per_class, vp.lr) == (1000, None, 5, MINI.family_vp_lr)
    full = resolve(RunConfig(family=1, method="vp", shots="full"))
    assert full.val_per_class is None and full.steps == 1000  # full data keeps the validation split
    frozen = resolve(RunConfig(family=1, method="map", shots=5))
    assert (frozen.steps, frozen.lr, frozen.val_per_class) == (0, 0.0, 5)
    lp = resolve(RunConfig(family=1, method="lp", shots=10))
    assert lp.val_per_class == 10 and lp.steps is None
    for cfg in (vp, full, frozen, lp):
        assert resolve(cfg) == cfg


def test_legacy_family_keeps_the_first_protocol():
    legacy = resolve(RunConfig(method="vp", shots=5))
    assert (legacy.steps, legacy.val_per_class, legacy.lr) == (None, None, MINI.vp_lr)
    assert legacy.epochs == MINI.vp_epochs[5]


def test_fewshot_validation_is_disjoint_seeded_and_stratified():
    labels = np.repeat(np.arange(10), 30)
    train = sample_shots(labels, 5, seed=3)
    val = sample_fewshot_val(labels, train, 5, seed=3)
    assert not set(train) & set(val)
    assert np.bincount(labels[val]).tolist() == [5] * 10
    assert np.array_equal(val, sample_fewshot_val(labels, train, 5, seed=3))
    assert not np.array_equal(val, sample_fewshot_val(labels, train, 5, seed=4))
    with pytest.raises(ValueError, match="left after the training shots"):
        sample_fewshot_val(labels, sample_shots(labels, 28, seed=0), 5, seed=0)


@pytest.mark.parametrize("n,batch,steps", [(10, 16, 1000), (50, 32, 1000), (1069, 128, 1000), (1069, 128, 7)])
def test_step_budget_plans_whole_epochs_covering_the_budget(n, batch, steps):
    rounds, per_round = plan_rounds(VPSettings(steps=steps, batch_size=batch), n, batch)
    steps_per_epoch = -(-n // batch)
    done = rounds * per_round * steps_per_epoch
    assert done >= steps and done - steps < per_round * steps_per_epoch  # no round more than needed
    assert rounds <= 50
    assert plan_rounds(VPSettings(steps=0), n, batch) == (1, 0)
    assert plan_rounds(VPSettings(epochs=7), n, batch) == (7, 1)
