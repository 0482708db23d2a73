"""A nightly plagiarism check: compare the day's documents with everything seen before, then archive them.

    python examples/nightly/nightly.py                      # on the bundled examples, as is
    python examples/nightly/nightly.py --index s3://bucket/ref-index --sources /shared/sources \\
        --incoming /shared/incoming/2026-11-26 --reports /shared/reports --address auto

Steps (one engine, so the models load once):

1. ``--sources`` (optional): bring the reference collection into the index (``prefix sources/``, pruned, so
   a source deleted from that folder leaves the index). Unchanged sources cost no model work.
2. Scan ``--incoming`` against the index and with each other; write ``REPORTS/<date>.parquet`` (and its
   ``.docs.parquet``). Pairs with an indexed sentence name it as side a (``origin_a = "reference"``).
3. Archive the day's documents into the index (``prefix incoming/<date>/``), so tomorrow's are checked against
   them too. Scanning before archiving keeps a document from matching itself. A second run for the same date
   finds the day already archived and stops without scanning.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from scanner.engine import EngineConfig, open_engine
from scanner.index import ReferenceIndex, update_index
from scanner.reference import ReferenceConfig, run_against
from scanner.scanning import ScanConfig

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=str(EXAMPLES / "out" / "nightly" / "index"), help="reference index (folder or URI)")
    parser.add_argument("--sources", default=str(EXAMPLES / "docs" / "sources"), help="reference collection to keep indexed ('' for none)")
    parser.add_argument("--incoming", default=str(EXAMPLES / "docs" / "submissions"), help="the day's documents")
    parser.add_argument("--reports", default=str(EXAMPLES / "out" / "nightly" / "reports"), help="folder for the reports")
    parser.add_argument("--date", default=time.strftime("%Y-%m-%d", time.gmtime()), help="the day's name (default: today, UTC)")
    parser.add_argument("--address", default=None, help="Ray cluster (default: RAY_ADDRESS, else this machine)")
    parser.add_argument("--embedder", default=None, help="embedding model (must match the index's)")
    parser.add_argument("--threshold", type=float, default=None, help="cross-encoder threshold (default: the model's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = ScanConfig.from_options(embedder=args.embedder, threshold=args.threshold)
    config = dataclasses.replace(config, engine=EngineConfig(address=args.address))
    archive = f"incoming/{args.date}/"
    engine = open_engine(config.engine)
    try:
        if args.sources:
            done = update_index([args.sources], args.index, config, prefix="sources/", prune=True, engine=engine)
            print(f"sources: {len(done.added)} added, {len(done.changed)} changed, {len(done.removed)} removed, "
                  f"{len(done.unchanged)} unchanged ({done.embedded} sentences embedded)")
        index = ReferenceIndex(args.index)
        if any(doc.startswith(archive) for doc in index.documents):
            print(f"{args.date} is already archived in {args.index}: nothing to do")
            return 0
        Path(args.reports).mkdir(parents=True, exist_ok=True)
        out = Path(args.reports) / f"{args.date}.parquet"
        result = run_against([args.incoming], ReferenceConfig(index=args.index), config, out, engine=engine)
        done = update_index([args.incoming], args.index, config, prefix=archive, engine=engine)
        print(f"archived: {len(done.added)} documents under {archive} ({done.embedded} sentences embedded); "
              f"index now {done.documents} documents, {done.sentences} sentences")
    finally:
        engine.close()
    c = result.counts
    print(f"scanned {c['documents_scanned']} documents against {c['reference_documents']} indexed: "
          f"{c['flagged_pairs']} flagged pairs ({c['exact_pairs']} exact, {c['paraphrase_pairs']} paraphrase)")
    for row in result.pairs.to_pylist():
        if row["match"] != "rejected":
            source = ("index " if row["origin_a"] == "reference" else "") + row["doc_a"]
            print(f"  [{row['match']:<10}] {row['score']:.2f}  {row['doc_b']}:{row['start_b']}-{row['end_b']}  <-  {source}:{row['start_a']}-{row['end_a']}")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
