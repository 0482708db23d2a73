"""Query search: which reference sentences paraphrase a given sentence?

    python examples/search_example.py            # output: examples/search_example.out.txt

Builds a reference index of examples/docs/sources in a temporary folder (the packaged MiniLM embedder), then
asks three questions through ``scanner.search``: bi-encoder candidates from the index, then the shipped
cross-encoder. The second query is a word swap of a source sentence (same words, other meaning), which a
correct model must not return as a paraphrase.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import scanner

SOURCES = Path(__file__).resolve().parent / "docs" / "sources"
QUERIES = [
    "The queen is the only female in the colony that lays eggs, and she can produce two thousand of them in a day.",
    "When lava reaches the surface it is called magma.",
    "The museum opens at nine on weekdays.",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        built = scanner.update_index([SOURCES], folder)
        print(f"index: {built.documents} documents, {built.sentences} sentences\n")
        hits = scanner.search(QUERIES, against=folder, threshold=0.5, engine="local")
    rows = hits.to_pylist()
    for query in QUERIES:
        mine = [r for r in rows if r["query"] == query]
        print(f"query: {query}")
        if not mine:
            print("   no paraphrase in the index")
        for r in mine:
            print(f"   {r['rank']}. [{r['match']}] score {r['score']:.3f} cosine {r['cosine']:.3f}  {r['doc']}:{r['start']}-{r['end']}")
            print(f"      {r['text']}")
        print()


if __name__ == "__main__":
    main()
