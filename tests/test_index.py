"""The reference index: build, add, re-run without model work, changed and deleted documents, crash safety,
and refusal of another embedding model. Fast: the lexical 'hashing' embedder and the local engine."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write

from scanner.cli import cli
from scanner.engine import LocalEngine
from scanner.errors import IndexError_
from scanner.index import MANIFEST, SEGMENTS, Location, ReferenceIndex, update_index, vectors_of
from scanner.scanning import ScanConfig

CONFIG = ScanConfig.from_options(embedder="hashing")
DOCS = {
    "rivers.txt": "The river rises in the northern hills. It flows south to the sea for two hundred miles.",
    "bridges.md": "# Bridges\n\nA stone bridge crosses the river near the old mill. Nobody knows who built it.",
    "notes/mills.txt": "The old mill ground flour for the whole valley. It closed in 1952.",
}


class CountingEngine(LocalEngine):
    """The real local engine, counting what reaches the stages: a run with no model work leaves these at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = self.embed_calls = self.embedded = 0

    def read(self, sources, ingest, segment):
        self.reads += len(sources)
        return super().read(sources, ingest, segment)

    def embed(self, texts, config, on_chunk=None):
        self.embed_calls += 1
        self.embedded += len(texts)
        return super().embed(texts, config, on_chunk)


@pytest.fixture
def corpus(tmp_path):
    for name, text in DOCS.items():
        write(tmp_path / "docs" / name, text)
    return tmp_path / "docs"


@pytest.fixture
def engine():
    return CountingEngine()


def live_rows(where) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for batch in ReferenceIndex(where).batches(batch_rows=2):
        for doc, text in zip(batch["doc"].to_pylist(), batch["text"].to_pylist(), strict=True):
            out.setdefault(doc, []).append(text)
    return out


def test_build_writes_manifest_and_sentence_rows(corpus, tmp_path, engine):
    where = tmp_path / "index"
    done = update_index([corpus], where, CONFIG, engine=engine)
    assert sorted(done.added) == sorted(DOCS) and done.written
    manifest = json.loads((where / MANIFEST).read_text())
    assert manifest["embedder"] == {"name": "hashing", "path": "hashing", "sha256": "hashing-v1"}
    assert manifest["dim"] == 512 and manifest["tool_version"] and manifest["created"] and manifest["updated"]
    for name, entry in manifest["documents"].items():
        assert entry["sha256"] == hashlib.sha256((corpus / name).read_bytes()).hexdigest()
        assert entry["segmenter"].startswith("spacy") and (where / SEGMENTS / entry["segment"]).is_file()
    index = ReferenceIndex(where)
    assert index.sentences == done.sentences == 7  # "# Bridges" is one
    for batch in index.batches():
        for rec in batch.to_pylist():
            text = (corpus / rec["doc"]).read_text()
            assert text[rec["start"] : rec["end"]] == rec["text"]
        assert np.allclose(np.linalg.norm(vectors_of(batch), axis=1), 1.0, atol=1e-5)


def test_unchanged_inputs_do_no_model_work(corpus, tmp_path, engine):
    where = tmp_path / "index"
    update_index([corpus], where, CONFIG, engine=engine)
    assert engine.embed_calls == 1 and engine.embedded == 7
    before = (where / MANIFEST).read_bytes()
    engine.reads = engine.embed_calls = engine.embedded = 0
    again = update_index([corpus], where, CONFIG, engine=engine)
    assert (engine.reads, engine.embed_calls, engine.embedded) == (0, 0, 0)
    assert sorted(again.unchanged) == sorted(DOCS) and not again.written and again.embedded == 0
    assert (where / MANIFEST).read_bytes() == before


def test_adding_embeds_only_the_new_documents(corpus, tmp_path, engine):
    where = tmp_path / "index"
    update_index([corpus], where, CONFIG, engine=engine)
    more = write(tmp_path / "more" / "canals.txt", "The canal joins the river below the mill. Barges once carried coal on it.")
    engine.embedded = 0
    done = update_index([more.parent], where, CONFIG, engine=engine, prefix="more/")
    assert done.added == ["more/canals.txt"] and done.embedded == engine.embedded == 2
    assert set(live_rows(where)) == {*DOCS, "more/canals.txt"}


def test_changed_document_replaces_its_sentences(corpus, tmp_path, engine):
    where = tmp_path / "index"
    update_index([corpus], where, CONFIG, engine=engine)
    write(corpus / "rivers.txt", "The river rises in the northern hills. A new dam now holds it back near the town.")
    engine.embedded = 0
    done = update_index([corpus], where, CONFIG, engine=engine)
    assert done.changed == ["rivers.txt"] and sorted(done.unchanged) == ["bridges.md", "notes/mills.txt"]
    assert engine.embedded == 2  # only the changed document's sentences
    rows = live_rows(where)
    assert rows["rivers.txt"] == ["The river rises in the northern hills.", "A new dam now holds it back near the town."]
    assert rows["bridges.md"][0] == "# Bridges"
    used = set(json.loads((where / MANIFEST).read_text())["segments"])
    assert {p.name for p in (where / SEGMENTS).iterdir()} == used  # no file left that the manifest does not use


def test_deleted_document_is_removed_only_with_prune(corpus, tmp_path, engine):
    where = tmp_path / "index"
    update_index([corpus], where, CONFIG, engine=engine)
    other = write(tmp_path / "other" / "x.txt", "An unrelated document about the weather in spring.")
    update_index([other.parent], where, CONFIG, engine=engine, prefix="other/")
    (corpus / "bridges.md").unlink()
    kept = update_index([corpus], where, CONFIG, engine=engine)
    assert kept.removed == [] and "bridges.md" in live_rows(where)
    pruned = update_index([corpus], where, CONFIG, engine=engine, prune=True)
    # prune with no prefix looks at every document: other/x.txt is not under ./docs either
    assert pruned.removed == ["bridges.md", "other/x.txt"]
    assert set(live_rows(where)) == {"rivers.txt", "notes/mills.txt"}
    update_index([other.parent], where, CONFIG, engine=engine, prefix="other/")
    (corpus / "rivers.txt").unlink()
    scoped = update_index([other.parent], where, CONFIG, engine=engine, prefix="other/", prune=True)
    assert scoped.removed == [] and "rivers.txt" in live_rows(where)  # prune stays under its prefix


def test_unreadable_document_retires_its_sentences(corpus, tmp_path, engine):
    where = tmp_path / "index"
    update_index([corpus], where, CONFIG, engine=engine)
    (corpus / "rivers.txt").write_bytes(b"")
    done = update_index([corpus], where, CONFIG, engine=engine)
    assert done.removed == ["rivers.txt"] and done.skipped == {"rivers.txt": "empty file"}
    assert "rivers.txt" not in live_rows(where)
    engine.reads = 0
    assert update_index([corpus], where, CONFIG, engine=engine).written is False and engine.reads == 0


def test_uri_location(corpus, tmp_path, engine):
    uri = (tmp_path / "index").as_uri()
    assert uri.startswith("file://")
    update_index([corpus], uri, CONFIG, engine=engine)
    assert set(live_rows(uri)) == set(DOCS) and (tmp_path / "index" / MANIFEST).is_file()


def test_crash_before_the_manifest_keeps_the_previous_index(corpus, tmp_path, engine, monkeypatch):
    where = tmp_path / "index"
    update_index([corpus], where, CONFIG, engine=engine)
    before = (where / MANIFEST).read_bytes()
    write(corpus / "rivers.txt", "Entirely new text about rivers and their long winding valleys.")

    def crash(self, path, data):
        raise KeyboardInterrupt  # killed after the new segment was written, before the manifest

    monkeypatch.setattr(Location, "write_bytes_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        update_index([corpus], where, CONFIG, engine=engine)
    monkeypatch.undo()
    assert (where / MANIFEST).read_bytes() == before
    assert live_rows(where)["rivers.txt"][0] == "The river rises in the northern hills."  # every listed file readable
    assert len(list((where / SEGMENTS).iterdir())) == 2  # the stray segment, unused
    update_index([corpus], where, CONFIG, engine=engine)
    assert len(list((where / SEGMENTS).iterdir())) == 2  # new one written, stray one collected, old one still used
    assert live_rows(where)["rivers.txt"] == ["Entirely new text about rivers and their long winding valleys."]


def test_another_embedding_model_is_refused(corpus, tmp_path, engine):
    where = tmp_path / "index"
    update_index([corpus], where, CONFIG, engine=engine)
    with pytest.raises(IndexError_, match="built with embedder 'hashing'"):
        update_index([corpus], where, ScanConfig(), engine=engine)
    with pytest.raises(IndexError_, match="no reference index"):
        ReferenceIndex(tmp_path / "nowhere")
    (where / MANIFEST).write_text("{not json")
    with pytest.raises(IndexError_, match="cannot be read"):
        ReferenceIndex(where)


def test_cli_index_command(corpus, tmp_path):
    where = str(tmp_path / "index")
    args = ["index", str(corpus), "--index", where, "--embedder", "hashing", "--engine", "local"]
    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "3 documents, 7 sentences" in first.output and "3 added" in first.output
    second = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "3 unchanged" in second.output and "0 sentences embedded" in second.output and "(index unchanged)" in second.output
    refused = CliRunner().invoke(cli, ["index", str(corpus), "--index", where, "--engine", "local"])
    assert refused.exit_code == 6 and "--embedder hashing" in refused.output


@pytest.mark.parametrize("command", ["index", "search"])
def test_new_commands_have_help_with_an_example(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output and "scan " in result.output


def test_mostly_retired_segments_are_compacted_without_model_work(corpus, tmp_path, engine):
    where = tmp_path / "index"
    update_index([corpus], where, CONFIG, engine=engine)  # one segment, 7 rows
    write(corpus / "rivers.txt", "Rivers changed. The new text has two sentences.")
    write(corpus / "bridges.md", "Bridges changed too. Again two sentences.")
    engine.embedded = 0
    done = update_index([corpus], where, CONFIG, engine=engine)
    assert sorted(done.changed) == ["bridges.md", "rivers.txt"] and engine.embedded == 4  # mills.txt not re-embedded
    files = list((where / SEGMENTS).iterdir())
    assert len(files) == 1  # the old segment held 2 live rows of 7: they moved into the new one
    manifest = json.loads((where / MANIFEST).read_text())
    assert manifest["segments"] == {files[0].name: 6}
    assert live_rows(where)["notes/mills.txt"] == ["The old mill ground flour for the whole valley.", "It closed in 1952."]


def test_files_that_cannot_be_indexed_need_no_engine_on_a_rerun(corpus, tmp_path, engine):
    write(corpus / "big.txt", "x " * 600)
    write(corpus / "image.png", b"\x89PNG\r\n")
    config = ScanConfig.from_options(embedder="hashing", max_file_size=1000)
    where = tmp_path / "index"
    first = update_index([corpus], where, config, engine=engine)
    assert "over the" in first.skipped["big.txt"] and "unsupported file type" in first.skipped["image.png"]
    engine.reads = 0
    again = update_index([corpus], where, config, engine=engine)
    assert engine.reads == 0 and not again.written and set(again.skipped) == {"big.txt", "image.png"}
