from __future__ import annotations

import os
import time

import numpy as np
from conftest import write

from scanner.cache import STALE_SECONDS, EmbeddingCache, content_key
from scanner.scanning import ScanConfig, run_scan


def test_cache_round_trip_and_damaged_shard(tmp_path):
    cache = EmbeddingCache(tmp_path, "model-x")
    keys = [content_key(t) for t in ("a", "b", "c")]
    cache.add(keys[:2], np.eye(2, 3, dtype=np.float32))
    (cache.folder / "broken.npz").write_bytes(b"not a zip")
    again = EmbeddingCache(tmp_path, "model-x")
    found, vecs = again.lookup(keys)
    assert found.tolist() == [True, True, False]
    np.testing.assert_array_equal(vecs, np.eye(2, 3))
    assert not (cache.folder / "broken.npz").exists()
    assert EmbeddingCache(tmp_path, "model-y").lookup(keys)[0].tolist() == [False] * 3
    assert content_key("A") != content_key("a")


def test_second_run_embeds_nothing_and_reports_the_same(tmp_path, local_engine):
    write(tmp_path / "docs" / "a.txt", "The harbour was quiet that night. A small boat came in from the north.")
    write(tmp_path / "docs" / "b.txt", "That night the harbour was quiet. Gulls circled over the empty market.")
    config = ScanConfig.from_options(cache_dir=str(tmp_path / "cache"), threshold=0.0, min_cosine=0.2)
    first = run_scan([tmp_path / "docs"], config, engine=local_engine)
    second = run_scan([tmp_path / "docs"], config, engine=local_engine)
    assert first.counts["embeddings_from_cache"] == 0
    assert second.counts["embeddings_from_cache"] == second.counts["distinct_sentences"] == 4
    assert first.pairs.equals(second.pairs)


def test_shards_being_written_are_left_alone_and_stale_ones_removed(tmp_path):
    cache = EmbeddingCache(tmp_path, "model-x")
    cache.add([content_key("a")], np.ones((1, 3), dtype=np.float32))
    writing = cache.folder / ".shard-live.npz"  # another run's shard, half written
    writing.write_bytes(b"PK\x03\x04 half")
    left = cache.folder / ".shard-killed.npz"  # a killed run's leftover
    left.write_bytes(b"PK\x03\x04 half")
    os.utime(left, (time.time() - 2 * STALE_SECONDS,) * 2)
    again = EmbeddingCache(tmp_path, "model-x")
    assert len(again) == 1
    assert writing.exists() and not left.exists()
