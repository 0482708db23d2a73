"""Index and one-way scan on a real local Ray give what the in-process engine gives (search runs the same
engine calls); --address is honoured by the new commands."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scanner.cli import cli
from scanner.engine import EngineConfig, open_engine
from scanner.index import ReferenceIndex, update_index, vectors_of
from scanner.reference import ReferenceConfig, run_against
from scanner.scanning import ScanConfig

ray = pytest.importorskip("ray")


def flagged(result):
    return sorted((r["origin_a"], r["doc_a"], r["index_a"], r["doc_b"], r["index_b"], r["match"]) for r in result.pairs.to_pylist())


def test_index_and_one_way_scan_on_local_ray(examples_dir, tmp_path, local_engine):
    config = ScanConfig.from_options(embedder="hashing", min_cosine=0.3)
    engine = open_engine(EngineConfig(engine="ray"))
    try:
        assert engine.description.startswith("ray")
        update_index([examples_dir / "sources"], tmp_path / "ray-index", config, engine=engine)
        on_ray = run_against([examples_dir / "submissions"], ReferenceConfig(index=str(tmp_path / "ray-index")), config, engine=engine)
    finally:
        engine.close()
    assert not ray.is_initialized()
    update_index([examples_dir / "sources"], tmp_path / "local-index", config, engine=local_engine)
    local = run_against([examples_dir / "submissions"], ReferenceConfig(index=str(tmp_path / "local-index")), config, engine=local_engine)
    a, b = (list(ReferenceIndex(tmp_path / n).batches()) for n in ("ray-index", "local-index"))
    assert [t.drop_columns(["vector"]).to_pylist() for t in a] == [t.drop_columns(["vector"]).to_pylist() for t in b]
    assert all((vectors_of(x) == vectors_of(y)).all() for x, y in zip(a, b, strict=True))
    assert flagged(on_ray) == flagged(local)


@pytest.mark.parametrize("command", [["index", "{docs}", "--index", "{tmp}/ix"], ["search", "a query", "--against", "{tmp}/ix"]])
def test_new_commands_honour_address(command, examples_dir, tmp_path):
    args = [a.format(docs=examples_dir / "sources", tmp=tmp_path) for a in command]
    if command[0] == "search":
        update_index([examples_dir / "sources"], tmp_path / "ix", ScanConfig.from_options(embedder="hashing"))
    result = CliRunner().invoke(cli, [*args, "--embedder", "hashing", "--address", "127.0.0.1:1"])
    assert result.exit_code == 7, result.output
    assert "does not answer" in result.output
