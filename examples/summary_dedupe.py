"""Summary redundancy removal: drop the sentences that repeat an earlier one, keep word swaps (they say
something else), and show what was removed and why.

    python examples/summary_dedupe.py [SUMMARY.txt]             (default: examples/summary.txt)
"""

from __future__ import annotations

import sys
from pathlib import Path

import scanner


def main(path: str) -> None:
    text = Path(path).read_text(encoding="utf-8")
    result = scanner.dedupe(text)  # the threshold recorded with the model; pass threshold=0.9 to be stricter
    removed = sum(len(g.removed) for g in result.groups)
    print(f"{len(result.sentences)} sentences, {removed} removed as repeats (threshold {result.threshold:.2f}):\n")
    for group in result.groups:
        print(f"  kept    #{group.index + 1}: {group.text}")
        for r in group.removed:
            print(f"  removed #{r.index + 1} ({r.match}, score {r.score:.2f}): {r.text}")
    print("\nCleaned summary:\n")
    print(result.text)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/summary.txt")
