from __future__ import annotations

import itertools

import pytest

from scanner.segment import SegmentConfig, cut_long, load_segmenter, paragraphs, sentence_spans, word_count


@pytest.mark.parametrize("kind", ["auto", "sentencizer"])
def test_offsets_point_into_the_text(kind):
    text = "Dr. Smith went to Washington.  He arrived on Monday!\n\nA new paragraph without a full stop\nStill it."
    spans = sentence_spans(text, SegmentConfig(segmenter=kind))
    sents = [text[s:e] for s, e in spans]
    assert sents[0] == "Dr. Smith went to Washington."
    assert "He arrived on Monday!" in sents
    assert all(s == s.strip() and s for s in sents)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    # a blank line always ends a sentence
    assert not any("Monday!" in s and "paragraph" in s for s in sents)


def test_trained_segmenter_is_used_when_installed():
    _, description = load_segmenter("auto")
    assert "senter" in description
    _, description = load_segmenter("sentencizer")
    assert "sentencizer" in description


def test_long_run_on_text_is_cut():
    text = "word " * 2000
    spans = sentence_spans(text.strip(), SegmentConfig(max_chars=300, chunk_chars=1000))
    assert len(spans) > 30
    assert all(e - s <= 300 for s, e in spans)
    assert " ".join(text.strip()[s:e] for s, e in spans) == text.strip()


def test_cut_long_without_spaces():
    text = "x" * 25
    assert list(cut_long(0, 25, text, 10)) == [(0, 10), (10, 20), (20, 25)]


def test_paragraph_chunks_keep_offsets():
    text = "One.\n\n  Two.\n \nThree."
    chunks = list(paragraphs(text, 100))
    assert [text[o : o + len(c)] == c for o, c in chunks] == [True] * 3
    assert [c.strip() for _, c in chunks] == ["One.", "Two.", "Three."]


def test_word_count_ignores_punctuation():
    assert word_count("Hello , world - again !") == 3
