"""Shared fixtures. Tests run single-threaded torch so that two test processes (or a test run
beside a benchmark) never oversubscribe the cores."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("LTHVP_TEST_THREADS", "1")))


@pytest.fixture
def store(tmp_path):
    from lthvp.results.store import ResultStore

    return ResultStore(tmp_path / "store")
