from __future__ import annotations

import numpy as np
import pytest

from scanner.exclusions import boilerplate_mask, quoted_mask


def spans(text: str, sentences: list[str]) -> tuple[list[int], list[int]]:
    starts = [text.index(s) for s in sentences]
    return starts, [s + len(x) for s, x in zip(starts, sentences, strict=True)]


@pytest.mark.parametrize("text,sentence,quoted", [
    ('“It was cold in the hall.” Then we left.', "“It was cold in the hall.”", True),
    ('"It was cold in the hall". Then we left.', '"It was cold in the hall".', True),  # punctuation after the mark
    ("He said: “It was cold in the hall.” Then we left.", "He said: “It was cold in the hall.”", False),  # only contains one
    ("«Le froid était vif.» Then we left.", "«Le froid était vif.»", True),
    ("> A quoted line\n> that continues here.\n\nOwn words.", "A quoted line\n> that continues here.", True),
    ("> A quoted line.\n\nOwn words here.", "Own words here.", False),
    ("It's the 'quoted' one.", "It's the 'quoted' one.", False),  # single quotes never count
])
def test_quoted_sentences(text, sentence, quoted):
    starts, ends = spans(text, [sentence])
    assert quoted_mask(text, starts, ends).tolist() == [quoted]


def test_sentences_inside_a_multi_sentence_quote():
    text = 'She wrote: “The first claim. The second claim.” We disagree.'
    starts, ends = spans(text, ["“The first claim.", "The second claim.”", "We disagree."])
    assert quoted_mask(text, starts, ends).tolist() == [True, True, False]


def test_boilerplate_by_key_or_cosine_block_by_block():
    vecs = np.eye(4, dtype=np.float32)
    keys = np.array([10, 11, 12, 13])
    near = np.array([[0.95, np.sqrt(1 - 0.95**2), 0, 0]], dtype=np.float32)  # cosine 0.95 with row 0
    blocks = [(np.array([99]), near), (np.array([12]), np.array([[0, 0, 0, 1]], np.float32) * -1)]
    assert boilerplate_mask(vecs, keys, iter(blocks), 0.9).tolist() == [True, False, True, False]
    assert boilerplate_mask(vecs, keys, iter(blocks), 0.96).tolist() == [False, False, True, False]
    assert boilerplate_mask(vecs, keys, iter(blocks), 0.9, rows=np.array([1, 2, 3])).tolist() == [False, False, True, False]
