"""Redundancy removal: drop the sentences of a text (a summary, notes) that repeat an earlier one.

    >>> import scanner
    >>> result = scanner.dedupe(["Bees dance.", "The waggle dance shows where food is.",
    ...                          "Where food is, the waggle dance shows."])           # doctest: +SKIP
    >>> result.kept, [g.removed for g in result.groups]                                # doctest: +SKIP

The matching is the scan's own (``scanning.find_pairs`` with scope ``within``): identical sentences by hash,
the rest by bi-encoder candidates checked by the cross-encoder. Sentences are read in order; a sentence is
removed when it matches an earlier sentence that was kept, and it joins that sentence's group. So the first
sentence of each paraphrase group stays, and a chain (A~B, B~C, but not A~C) never removes C for B's sake.
Sentences shorter than ``min_words`` words are never compared (and so always kept), as in a scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from scanner.engine import Engine, shared_local_engine
from scanner.schema import SENTENCES, conform
from scanner.segment import SegmentConfig, load_segmenter, sentence_spans

DOC = "text"


@dataclass(frozen=True)
class Removed:
    """A removed sentence: its position, text, and how it matched the kept sentence of its group."""

    index: int
    text: str
    score: float
    match: str  # "exact" or "paraphrase"


@dataclass(frozen=True)
class Group:
    """A kept sentence and the later sentences removed as its repeats."""

    index: int
    text: str
    removed: tuple[Removed, ...]


@dataclass
class DedupeResult:
    """``sentences``: the input, segmented; ``kept``: the sentences that stay, in order; ``groups``: what was
    removed and why. ``text`` is the cleaned text: for a string input, the original with the removed sentences
    cut out (layout kept); for a list, the kept sentences joined by spaces."""

    sentences: list[str]
    kept: list[str]
    groups: list[Group]
    threshold: float
    spans: list[tuple[int, int]] | None = None
    source: str | None = None
    removed_indices: set[int] = field(default_factory=set)

    @property
    def text(self) -> str:
        if self.source is None or self.spans is None:
            return " ".join(self.kept)
        return "".join(part for part, why in self.pieces() if why is None)

    def pieces(self) -> list[tuple[str, Removed | None]]:
        """The text as consecutive pieces: (text, None) for what stays, (sentence, Removed) for each removed
        sentence. A removed sentence also takes the whitespace after it, so no gaps are left."""
        source, spans = self.source if self.source is not None else " ".join(self.sentences), self.spans
        if spans is None:
            spans, pos = [], 0
            for s in self.sentences:
                spans.append((pos, pos + len(s)))
                pos += len(s) + 1
        why = {r.index: r for g in self.groups for r in g.removed}
        out: list[tuple[str, Removed | None]] = []
        pos = 0
        for i, (start, end) in enumerate(spans):
            if i not in why:
                continue
            stop = end
            while stop < len(source) and source[stop] in " \t":
                stop += 1
            if stop == len(source) or source[stop] in "\r\n":  # last on its line: take the space before it
                stop = end
                while start > pos and source[start - 1] in " \t":
                    start -= 1
                if (start == 0 or source[start - 1] == "\n") and source[stop:stop + 1] == "\n":
                    stop += 1  # the sentence was the whole line: the line goes too
            out.append((source[pos:start], None))
            out.append((source[start:stop], why[i]))
            pos = stop
        out.append((source[pos:], None))
        return [p for p in out if p[0]]


def split_sentences(text: str, segmenter: str = "auto") -> list[tuple[int, int]]:
    """Sentence spans of ``text``, with the scan's segmenter."""
    config = SegmentConfig(segmenter=segmenter)  # type: ignore[arg-type]
    nlp, _ = load_segmenter(config.segmenter)
    return sentence_spans(text, config, nlp)


def dedupe(
    sentences: str | Sequence[str],
    threshold: float | None = None,
    *,
    cross_encoder: str | None = None,
    embedder: str | None = None,
    min_words: int | None = None,
    min_cosine: float | None = None,
    top_k: int | None = None,
    device: str = "auto",
    engine: Engine | None = None,
    both_orders: bool = False,
    swap_rule: bool = True,
    cache: bool = True,
) -> DedupeResult:
    """Remove sentences that repeat (exactly or in paraphrase) an earlier kept sentence.

    ``sentences``: a text (segmented like a scan) or a list of sentences. ``threshold``: the paraphrase
    probability at which a sentence counts as a repeat (default: the model's). The other options are the
    scan's (see ``ScanConfig.from_options``); ``cache`` off neither reads nor writes the embedding cache (a
    service answering many callers keeps no trace of their text). Returns a ``DedupeResult``.
    """
    from scanner.scanning import ScanConfig, find_pairs

    source: str | None = None
    if isinstance(sentences, str):
        source = sentences
        spans: list[tuple[int, int]] | None = split_sentences(source)
        texts = [source[s:e] for s, e in spans]
    else:
        spans, texts = None, [str(s) for s in sentences]
    config = ScanConfig.from_options(scope="within", threshold=threshold, cross_encoder=cross_encoder,
                                     embedder=embedder, min_words=min_words, min_cosine=min_cosine, top_k=top_k,
                                     device=device, both_orders=both_orders, swap_rule=swap_rule, cache=cache)
    table = conform({"doc": [DOC] * len(texts), "index": list(range(len(texts))),
                     "start": [s for s, _ in spans] if spans else [0] * len(texts),
                     "end": [e for _, e in spans] if spans else [len(t) for t in texts], "text": texts},
                    SENTENCES, "sentences")
    pairs, stats = find_pairs(table, config, engine or shared_local_engine())
    groups = _groups(texts, pairs)
    removed = {r.index for g in groups for r in g.removed}
    return DedupeResult(sentences=texts, kept=[t for i, t in enumerate(texts) if i not in removed], groups=groups,
                        threshold=float(stats["threshold"]), spans=spans, source=source, removed_indices=removed)


def _groups(texts: list[str], pairs: pa.Table) -> list[Group]:
    """Greedy, in reading order: sentence j goes when it matches an earlier kept sentence (the best-scoring one)."""
    matches: dict[int, list[tuple[int, float, str]]] = {}
    for r in pairs.select(["index_a", "index_b", "score", "match"]).to_pylist():
        if r["match"] == "rejected":
            continue
        i, j = sorted((r["index_a"], r["index_b"]))
        matches.setdefault(j, []).append((i, float(r["score"]), r["match"]))
    removed_by: dict[int, list[Removed]] = {}
    removed: set[int] = set()
    for j in range(len(texts)):
        earlier = [(i, s, m) for i, s, m in matches.get(j, []) if i not in removed]
        if not earlier:
            continue
        i, score, match = max(earlier, key=lambda x: (x[2] == "exact", x[1], -x[0]))
        removed.add(j)
        removed_by.setdefault(i, []).append(Removed(index=j, text=texts[j], score=score, match=match))
    return [Group(index=i, text=texts[i], removed=tuple(rs)) for i, rs in sorted(removed_by.items())]
