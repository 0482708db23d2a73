"""The labelled sentence pair that every data reader, generator and job in ``pipelines/`` passes around."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pair:
    """One labelled sentence pair; ``label`` is 1 for a paraphrase, 0 otherwise."""

    a: str
    b: str
    label: int
    source: str
