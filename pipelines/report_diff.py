"""Compare two scan reports, apart from timings: the same rows in the pairs, documents and by-document-pair
tables, and the same run metadata once wall-clock figures are left out.

    python -m pipelines.report_diff before/report.parquet after/report.parquet      # exit 0: equal, 1: not
    python -m pipelines.report_diff --record-examples     # after a deliberate change of behaviour only

A refactoring that must not change behaviour is checked with it on the bundled examples (``tests/
test_report_diff.py``) and on a benchmark corpus (``pipelines.corpus``). Tables are compared cell by cell,
floats exactly; only metadata keys that hold times (``timings``, ``*_seconds``, ``created``...) and the
report's own path are ignored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from scanner.report import read_metadata, sidecar_path

SIDECARS = ("docs", "pairs_by_doc")
#: metadata keys whose values are wall-clock facts, not results
VOLATILE = ("timings", "seconds", "created", "started", "finished", "elapsed", "duration", "out", "path", "engine")


def stable(meta: Any) -> Any:
    """The metadata without wall-clock values (any key naming a time or a path), recursively."""
    if isinstance(meta, dict):
        return {k: stable(v) for k, v in meta.items() if not any(word in k for word in VOLATILE)}
    if isinstance(meta, list):
        return [stable(v) for v in meta]
    return meta


def report_differences(before: Path, after: Path) -> list[str]:
    """What differs between the two reports (empty when they are equal apart from timings)."""
    problems: list[str] = []
    for kind, (a, b) in {"pairs": (before, after),
                         **{k: (sidecar_path(before, k), sidecar_path(after, k)) for k in SIDECARS}}.items():
        if a.exists() != b.exists():
            problems.append(f"{kind}: present in only one report")
            continue
        if not a.exists():
            continue
        ta, tb = pq.read_table(a), pq.read_table(b)
        if ta.schema.remove_metadata() != tb.schema.remove_metadata():
            problems.append(f"{kind}: schemas differ")
        elif ta.num_rows != tb.num_rows:
            problems.append(f"{kind}: {ta.num_rows} rows vs {tb.num_rows}")
        else:
            for name in ta.column_names:
                if not ta[name].equals(tb[name]):
                    rows = [i for i, (x, y) in enumerate(zip(ta[name].to_pylist(), tb[name].to_pylist(), strict=True))
                            if x != y]
                    problems.append(f"{kind}.{name}: {len(rows)} rows differ, first row {rows[0] if rows else '?'}")
    ma, mb = stable(read_metadata(before)), stable(read_metadata(after))
    if ma != mb:
        keys = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
        problems.append(f"metadata differs in {keys}")
    return problems


REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "examples-report.json"


def record_examples(golden: Path = GOLDEN) -> Path:
    """Scan the bundled examples with the default settings and record the report's rows as the reference
    that ``tests/test_report_diff.py`` compares every later run with."""
    import json
    import tempfile

    from scanner.scanning import ScanConfig, run_scan

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.parquet"
        run_scan([REPO / "examples" / "docs"], ScanConfig(), out)
        rows = {"pairs": pq.read_table(out).to_pylist()}
        for kind in SIDECARS:
            rows[kind] = pq.read_table(sidecar_path(out, kind)).to_pylist()
        for row in rows["docs"]:  # where the checkout lies is no result
            row.pop("path")
    golden.parent.mkdir(parents=True, exist_ok=True)
    golden.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    return golden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, nargs="?")
    parser.add_argument("after", type=Path, nargs="?")
    parser.add_argument("--record-examples", action="store_true", help=f"write {GOLDEN.relative_to(REPO)}")
    args = parser.parse_args()
    if args.record_examples:
        print(f"recorded {record_examples()}")
        return
    if args.before is None or args.after is None:
        parser.error("give two reports, or --record-examples")
    problems = report_differences(args.before, args.after)
    for line in problems:
        print(line)
    print("equal apart from timings" if not problems else f"{len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
