"""One run on a real local Ray: the Ray Data stages give the same report as the in-process engine."""

from __future__ import annotations

import pytest

from scanner.pipeline import ScanConfig, run_scan

ray = pytest.importorskip("ray")


def flagged(result):
    cols = ["doc_a", "index_a", "doc_b", "index_b", "match"]
    return sorted(tuple(r[c] for c in cols) for r in result.pairs.to_pylist())


@pytest.mark.slow
def test_local_ray_matches_in_process(examples_dir, local_engine):
    local = run_scan([examples_dir], ScanConfig.from_options(), engine=local_engine)
    on_ray = run_scan([examples_dir], ScanConfig.from_options(engine="ray"))
    assert on_ray.metadata["engine"].startswith("ray")
    assert not ray.is_initialized()  # the local Ray started for the run was shut down
    assert flagged(on_ray) == flagged(local)
    assert on_ray.documents.sort_by("doc").equals(local.documents.sort_by("doc"))
    scores_local = sorted(round(s, 4) for s in local.pairs["score"].to_pylist())
    scores_ray = sorted(round(s, 4) for s in on_ray.pairs["score"].to_pylist())
    assert scores_local == scores_ray
