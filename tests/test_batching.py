from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.batching import MIN_ROWS, token_batches


@given(st.lists(st.integers(0, 300), max_size=200), st.integers(1, 2000), st.integers(1, 64))
def test_every_row_once_and_within_budget(lengths, max_tokens, max_rows):
    batches = token_batches(lengths, max_tokens, max_rows)
    flat = np.concatenate(batches) if batches else np.zeros(0, int)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert 1 <= len(b) <= max_rows
        padded = len(b) * max(max(lengths[i] for i in b), 1)
        assert padded <= max_tokens or len(b) == 1


def test_longest_first_and_sorted():
    batches = token_batches([3, 10, 4, 9, 1], max_tokens=20, max_rows=8)
    assert [b.tolist() for b in batches] == [[1, 3], [2, 0, 4]]


def test_rejects_bad_budget():
    with pytest.raises(ValueError, match="max_tokens"):
        token_batches([1, 2], max_tokens=0, max_rows=4)


@given(st.lists(st.integers(1, 300), max_size=300), st.integers(1, 20000), st.integers(1, 256),
       st.floats(0.0, 1.0))
def test_padding_bound(lengths, max_tokens, max_rows, max_padding):
    batches = token_batches(lengths, max_tokens, max_rows, max_padding)
    flat = np.concatenate(batches) if batches else np.zeros(0, int)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for b in batches:
        real = sum(lengths[i] for i in b)
        padded = len(b) * max(lengths[i] for i in b)
        assert padded <= (1 + max_padding) * real + 1e-9 or len(b) <= MIN_ROWS
        assert len(b) <= max_rows and (padded <= max_tokens or len(b) == 1)


def test_padding_bound_splits_a_mixed_batch():
    lengths = [100] * 10 + [20] * 10
    assert [len(b) for b in token_batches(lengths, 10_000, 64)] == [20]  # 2000 padded for 1200 real
    assert [len(b) for b in token_batches(lengths, 10_000, 64, max_padding=0.0)] == [10, 10]
    assert [len(b) for b in token_batches(lengths, 10_000, 64, max_padding=0.2)] == [12, 8]  # 1200 <= 1.2 x 1040


def test_batch_budget_follows_the_device_unless_given():
    import torch

    from scanner.device import CPU_BATCH_TOKENS, GPU_BATCH_TOKENS, batch_tokens

    assert batch_tokens(torch.device("cpu"), None) == CPU_BATCH_TOKENS < GPU_BATCH_TOKENS == batch_tokens(torch.device("cuda"), None)
    assert batch_tokens(torch.device("cpu"), 512) == batch_tokens(torch.device("cuda"), 512) == 512
