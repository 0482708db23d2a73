"""Pair check from a file: score every pair of a TSV (or CSV, Parquet) file and compare with its labels.

    python examples/check_pairs.py [PAIRS.tsv] [SCORES.parquet]   (defaults: examples/pairs.tsv examples/out/scores.parquet)

The same as `scan check --pairs examples/pairs.tsv --out examples/out/scores.parquet`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import scanner


def main(pairs: str, out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table = scanner.check_file(pairs, out)  # keeps the file's own columns (here: id, label) and adds the scores
    threshold = float(table.schema.metadata[b"threshold"])
    rows = table.to_pylist()
    print(f"{'id':>3} {'label':>5} {'score':>6}  decision     sentence2")
    for r in rows:
        verdict = "paraphrase" if r["paraphrase"] else "different"
        wrong = "" if r["paraphrase"] == bool(r["label"]) else "   <- wrong"
        print(f"{r['id']:>3} {r['label']:>5} {r['score']:6.3f}  {verdict:<12} {r['sentence2']}{wrong}")
        if r["note"]:
            print(f"{'':29}note: {r['note']}")
    right = sum(r["paraphrase"] == bool(r["label"]) for r in rows)
    print(f"\n{right} of {len(rows)} decided as labelled (threshold {threshold:.2f}); scores written to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/pairs.tsv",
         sys.argv[2] if len(sys.argv) > 2 else "examples/out/scores.parquet")
