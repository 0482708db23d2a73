"""Paraphrase-aware plagiarism and near-duplicate scanner.

    >>> import scanner
    >>> report = scanner.scan("examples/docs", out="report.parquet")   # doctest: +SKIP

The heavy modules (torch, Ray, the models) load on first use, so ``import scanner`` and ``scan --help`` are fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ReferenceConfig", "ReferenceIndex", "ScanConfig", "ScanResult", "__version__", "check", "check_pairs",
           "dedupe", "run_against", "run_scan", "scan", "search", "update_index"]
#: lazily imported names -> their module. The modules are named scanning, pair_check and redundancy, not scan,
#: check and dedupe: a submodule import would otherwise replace the function attribute scanner.scan with the module.
_LAZY = {"scan": "scanning", "run_scan": "scanning", "ScanConfig": "scanning", "ScanResult": "scanning",
         "update_index": "index", "ReferenceIndex": "index", "run_against": "reference", "ReferenceConfig": "reference",
         "search": "reference", "check": "pair_check", "check_pairs": "pair_check", "check_file": "pair_check",
         "dedupe": "redundancy"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"scanner.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'scanner' has no attribute {name!r}")
