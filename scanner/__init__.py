"""Paraphrase-aware plagiarism and near-duplicate scanner.

    >>> import scanner
    >>> report = scanner.scan("examples/docs", out="report.parquet")   # doctest: +SKIP

The heavy modules (torch, Ray, the models) load on first use, so ``import scanner`` and ``scan --help`` are fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ScanConfig", "ScanResult", "__version__", "check", "check_pairs", "dedupe", "run_scan", "scan"]


def __getattr__(name: str) -> Any:
    if name in ("scan", "run_scan", "ScanConfig", "ScanResult"):
        from scanner import pipeline

        return getattr(pipeline, name)
    # the modules are named pair_check and redundancy, not check and dedupe: a submodule import would otherwise
    # replace the function attribute scanner.check with the module
    if name in ("check", "check_pairs", "check_file"):
        from scanner import pair_check

        return getattr(pair_check, name)
    if name == "dedupe":
        from scanner.redundancy import dedupe

        return dedupe
    raise AttributeError(f"module 'scanner' has no attribute {name!r}")
