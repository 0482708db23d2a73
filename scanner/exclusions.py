"""Sentences that may repeat without counting: quotations and boilerplate. Pure Python/numpy, no models.

**Quoted** (``--ignore-quotes``): a sentence is quoted when, after trimming whitespace and trailing ``.,;:!?)``,
it lies wholly inside one quoted passage of its document:

* a pair of double quotation marks: ``"..."`` (straight quotes, paired in order), ``“...”``, ``„...“``/``„...”``
  or ``«...»``, the marks themselves included, spanning at most ``MAX_QUOTE_CHARS`` characters;
* a Markdown blockquote: consecutive lines starting with ``>`` (after up to three spaces).

A sentence that only contains a quotation (``She said: “...”``) is not quoted; neither is text in single
quotes (apostrophes make them ambiguous), nor HTML ``<blockquote>`` (the extracted visible text keeps no mark).

**Boilerplate** (``--boilerplate PATH``, ``--exclude-index DIR``): a sentence is boilerplate when it is
identical to a boilerplate sentence after normalisation (``candidates.normalise``) or its cosine with the
nearest boilerplate sentence is at least ``boilerplate_cosine`` (default 0.9). No cross-encoder: templates,
assignment prompts and licences repeat nearly word for word.

Quoted and boilerplate sentences of the scanned documents are left out of the comparison, like sentences that
are too short: they are never flagged, and the run's counts say how many there were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from scanner.candidates import CandidateConfig, neighbour_pairs_between

MAX_QUOTE_CHARS = 5000
_N = MAX_QUOTE_CHARS
_QUOTES = re.compile(rf'"[^"]{{1,{_N}}}"|“[^”]{{1,{_N}}}”|„[^“”]{{1,{_N}}}[“”]|«[^»]{{1,{_N}}}»')
_BLOCKQUOTE = re.compile(r"(?:^[ \t]{0,3}>.*(?:\n|$))+", re.MULTILINE)
_TRAILING = " \t\r\n.,;:!?)"


def quoted_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every quoted passage of ``text``: quotation-mark pairs and Markdown blockquotes."""
    spans = [(m.start(), m.end()) for m in _QUOTES.finditer(text)]
    spans += [(m.start(), m.end()) for m in _BLOCKQUOTE.finditer(text)]
    return sorted(spans)


def quoted_mask(text: str, starts: Sequence[int], ends: Sequence[int]) -> np.ndarray:
    """For each sentence span of ``text``: whether it lies wholly inside one quoted passage."""
    spans = quoted_spans(text)
    out = np.zeros(len(starts), dtype=bool)
    if not spans:
        return out
    for row, (s, e) in enumerate(zip(starts, ends, strict=True)):
        while e > s and text[e - 1] in _TRAILING:
            e -= 1
        while s < e and text[s].isspace():
            s += 1
        out[row] = any(qs <= s and e <= qe for qs, qe in spans)
    return out


def boilerplate_mask(
    vectors: np.ndarray,
    keys: np.ndarray,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    min_cosine: float,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Which sentences match boilerplate: equal key, or cosine >= ``min_cosine`` with a boilerplate sentence.

    ``vectors``/``keys`` describe the scanned sentences (unit vectors); ``blocks`` yields (keys, vectors) of
    boilerplate sentences block by block, so a large boilerplate index never has to fit in memory at once.
    Only ``rows`` (default: all) are tested; the others stay False.
    """
    rows = np.arange(len(keys)) if rows is None else np.asarray(rows)
    out = np.zeros(len(keys), dtype=bool)
    config = CandidateConfig(top_k=1, min_cosine=min_cosine)
    for b_keys, b_vecs in blocks:
        pending = rows[~out[rows]]
        if not len(pending) or not len(b_keys):
            continue
        out[pending[np.isin(np.asarray(keys)[pending], b_keys)]] = True
        pending = rows[~out[rows]]
        if len(pending):
            i, _, _ = neighbour_pairs_between(vectors[pending], b_vecs, config)
            out[pending[i]] = True
    return out
