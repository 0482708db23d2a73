from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.batching import token_batches


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
