"""Output label mapping: ILM-VP's greedy rule (contract), Hungarian, random, and count matrices."""

import itertools

import numpy as np
import pytest
import torch

from lthvp.adapt.prompting import count_matrix, greedy_label_mapping, hungarian_label_mapping, random_label_mapping


def _total(counts, mapping):
    counts = np.asarray(counts)
    return sum(counts[s, t] for t, s in enumerate(mapping))


def _reference_greedy(counts):
    """Straightforward re-statement of the contract (independent of the library's argmax trick)."""
    c = np.asarray(counts, dtype=float)
    s_n, t_n = c.shape
    free_s, free_t = set(range(s_n)), set(range(t_n))
    mapping = [-1] * t_n
    for _ in range(t_n):
        best = None
        for s in sorted(free_s):
            for t in sorted(free_t):
                if best is None or c[s, t] > c[best]:
                    best = (s, t)
        mapping[best[1]] = best[0]
        free_s.discard(best[0])
        free_t.discard(best[1])
    return mapping


@pytest.mark.parametrize("counts,expected", [
    ([[5, 1], [2, 9], [0, 0]], [0, 1]),
    ([[1, 8, 0], [7, 9, 0], [0, 0, 3]], [0, 1, 2]),   # 9 (s1->t1), then 3 (s2->t2), then 1 (s0->t0)
    ([[0, 2, 6], [4, 0, 1], [3, 7, 0], [0, 0, 0]], [1, 2, 0]),
    # ties: first in row-major order wins
    ([[2, 2], [2, 0]], [0, 1]),        # (0,0) beats (0,1) and (1,0)
    ([[0, 3], [3, 3]], [1, 0]),        # (0,1) first: lowest s wins over (1,0)/(1,1)
    ([[1, 1], [1, 1], [1, 1]], [0, 1]),
    ([[0, 0], [0, 0], [0, 0]], [0, 1]),
    ([[0, 4, 4], [4, 4, 0], [4, 0, 0]], [1, 0, 2]),    # (0,1), then (1,0), then (2,2)
])
def test_greedy_hand_cases(counts, expected):
    assert greedy_label_mapping(counts) == expected
    assert _reference_greedy(counts) == expected
    assert greedy_label_mapping(torch.tensor(counts)) == expected  # tensors accepted too


def test_greedy_takes_largest_cell_first_even_when_suboptimal():
    counts = [[10, 9], [9, 0]]
    greedy = greedy_label_mapping(counts)
    hungarian = hungarian_label_mapping(counts)
    assert greedy == [0, 1] and _total(counts, greedy) == 10
    assert hungarian == [1, 0] and _total(counts, hungarian) == 18


@pytest.mark.parametrize("seed", range(6))
def test_random_matrices_one_to_one_and_hungarian_never_worse(seed):
    rng = np.random.default_rng(seed)
    s_n, t_n = int(rng.integers(4, 12)), int(rng.integers(2, 5))
    t_n = min(t_n, s_n)
    counts = rng.integers(0, 5, size=(s_n, t_n))  # small range: many ties
    greedy = greedy_label_mapping(counts)
    assert greedy == _reference_greedy(counts)
    hung = hungarian_label_mapping(counts)
    for m in (greedy, hung):
        assert len(m) == t_n and len(set(m)) == t_n and all(0 <= s < s_n for s in m)
    assert _total(counts, hung) >= _total(counts, greedy)
    # Hungarian is optimal: compare with brute force
    best = max(sum(counts[s, t] for t, s in enumerate(p)) for p in itertools.permutations(range(s_n), t_n))
    assert _total(counts, hung) == best


def test_source_fewer_than_target_raises():
    with pytest.raises(ValueError, match="S=2 < T=3"):
        greedy_label_mapping(np.ones((2, 3)))
    with pytest.raises(ValueError):
        hungarian_label_mapping(np.ones((2, 3)))
    with pytest.raises(ValueError):
        random_label_mapping(2, 3, seed=0)
    with pytest.raises(ValueError):
        greedy_label_mapping(np.ones(4))


def test_count_matrix():
    source_pred = torch.tensor([0, 2, 2, 1, 2, 0])
    target = torch.tensor([0, 1, 1, 0, 0, 1])
    counts = count_matrix(source_pred, target, n_source=4, n_target=2)
    expected = torch.tensor([[1, 1], [1, 0], [1, 2], [0, 0]])
    assert counts.shape == (4, 2)
    assert torch.equal(counts, expected)

    gen = torch.Generator().manual_seed(0)
    sp = torch.randint(0, 10, (500,), generator=gen)
    tg = torch.randint(0, 7, (500,), generator=gen)
    counts = count_matrix(sp, tg, 10, 7)
    manual = np.zeros((10, 7), dtype=int)
    for s, t in zip(sp.tolist(), tg.tolist()):
        manual[s, t] += 1
    np.testing.assert_array_equal(counts.numpy(), manual)
    assert int(counts.sum()) == 500


def test_random_label_mapping_seeded_one_to_one():
    a = random_label_mapping(10, 6, seed=3)
    assert a == random_label_mapping(10, 6, seed=3)
    assert len(set(a)) == 6 and all(0 <= s < 10 for s in a)
    assert any(random_label_mapping(10, 6, seed=s) != a for s in range(4, 8))
