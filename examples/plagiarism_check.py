"""Plagiarism check of a folder with the Python API: which documents reuse which, and the HTML report to read.

    python examples/plagiarism_check.py [FOLDER] [OUT_DIR]      (defaults: examples/docs examples/out)
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pyarrow.compute as pc

from scanner.html_report import write_html
from scanner.scanning import ScanConfig, run_scan


def main(folder: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # cross scope: only sentences from different documents are compared
    result = run_scan([folder], ScanConfig.from_options(scope="cross"), out / "plagiarism.parquet")
    ranked = result.pairs_by_doc  # also written beside the report as plagiarism.pairs_by_doc.parquet
    print(f"{result.counts['documents_scanned']} documents, {result.counts['flagged_pairs']} flagged sentence pairs, "
          f"{ranked.num_rows} document pairs\n")
    for pair in ranked.to_pylist():
        print(f"#{pair['rank']} {pair['doc_a']} <-> {pair['doc_b']}: {pair['share_b']:.0%} of {pair['doc_b']}'s "
              f"sentences match {pair['doc_a']} ({pair['exact_pairs']} copied, {pair['paraphrase_pairs']} paraphrased)")
        rows = result.pairs.filter(pc.and_(pc.equal(result.pairs["doc_a"], pair["doc_a"]),
                                           pc.equal(result.pairs["doc_b"], pair["doc_b"])))
        for r in sorted(rows.to_pylist(), key=lambda r: -r["score"]):
            print(textwrap.fill(f"{r['match']} {r['score']:.2f}: {r['text_b']}", 100, initial_indent="    ",
                                subsequent_indent="      "))
    page = write_html(result.pairs, result.documents, out / "plagiarism.html", metadata=result.metadata)
    print(f"\nReport: {result.out}; open {page} in a browser to read the matches side by side")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/docs", sys.argv[2] if len(sys.argv) > 2 else "examples/out")
