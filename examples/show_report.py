"""Print a scan report as readable text: python examples/show_report.py report.parquet"""

from __future__ import annotations

import sys
import textwrap

import pyarrow.parquet as pq

from scanner.reasons import review_notes
from scanner.report import read_metadata, sidecar_path


def main(path: str) -> None:
    pairs = pq.read_table(path).to_pylist()
    meta = read_metadata(path)
    print(f"\n{len(pairs)} flagged pairs (threshold {meta['threshold']:.2f}, cross-encoder {meta['cross_encoder']['sha256']}):\n")
    for r in sorted(pairs, key=lambda r: (-r["score"], r["doc_a"], r["index_a"])):
        print(f"[{r['match']:<10}] score {r['score']:.3f}  cosine {r['cosine']:.3f}")
        for side in "ab":
            where = f"{r['doc_' + side]}:{r['start_' + side]}-{r['end_' + side]}"
            print(textwrap.fill(r["text_" + side], 100, initial_indent=f"   {where:<32} ", subsequent_indent=" " * 36))
        for note in review_notes(r["text_a"], r["text_b"]):  # cues for the reviewer, as in the report's reason
            print(f"   note: {note}")
    docs = pq.read_table(sidecar_path(path, "docs")).to_pylist()
    print("\nDocuments:")
    for d in docs:
        detail = f"{d['flagged_sentences']}/{d['sentences']} sentences flagged" if d["status"] == "scanned" else d["reason"]
        print(f"   {d['doc']:<32} {d['status']:<8} {detail}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/out/report.parquet")
