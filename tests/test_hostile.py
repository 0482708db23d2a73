"""A folder nobody curated: every kind of bad input is scanned correctly or listed as skipped with its reason,
the rest of the collection is scanned, and memory stays bounded."""

from __future__ import annotations

import codecs
import io
import os
import random
import string
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import write

from scanner.ingest import IngestConfig, discover, read_source
from scanner.scanning import ScanConfig, run_scan

SHARED_CP1252 = "The café served “fresh” croissants every morning before the market opened."
SHARED_UTF16 = "Grüße aus Köln: the cathedral towers over the river on a misty morning."
SHARED_SPACES = "The ferry to the island leaves twice a day from the southern pier."
LATIN1 = "Señor Müller’s crème brûlée won first prize at the village fair this year."
BIG = 200_000_000
IS_ROOT = os.geteuid() == 0


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner.txt", "zipped text that must not be read as a document")
    return buf.getvalue()


def write_big_text(path: Path, size: int) -> None:
    """A text file of ``size`` bytes made of repeated lines, written in 1 MB blocks."""
    line = b"A long log line repeats itself here without any end in sight.\n"
    block = line * (1_000_000 // len(line) + 1)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            fh.write(block[:left])
            left -= min(left, len(block))


def build_hostile_folder(root: Path, outside: Path) -> dict[str, tuple[str, str | None]]:
    """Make the hostile folder; return {doc id: (expected status, expected reason substring or None)}."""
    rng = random.Random(5)
    expected: dict[str, tuple[str, str | None]] = {}

    def add(name: str, data: str | bytes, status: str, reason: str | None = None) -> None:
        write(root / name, data)
        expected[name] = (status, reason)

    add("good.txt", f"{SHARED_CP1252} The library closes early on Sundays in winter.\n\n{SHARED_SPACES}\n", "scanned")
    add("name with spaces.txt", f"Travellers often ask about schedules. {SHARED_SPACES}", "scanned")
    add("line\nbreak.txt", "A file whose name holds a newline is still an ordinary document to read.", "scanned")
    add("ünïcødé 文件.md", f"# Notes\n\n{SHARED_UTF16}\n", "scanned")
    add("cp1252.txt", f"Breakfast notes. {SHARED_CP1252}".encode("cp1252"), "scanned", "decoded as cp1252")
    add("latin1.txt", LATIN1.replace("’", "'").encode("latin-1"), "scanned")
    add("utf16.txt", codecs.BOM_UTF16_LE + f"{SHARED_UTF16} Travel notes end here.".encode("utf-16-le"), "scanned")
    add("invalid_utf8.txt", "Naïve café owners déjà vu résumé. ".encode() * 3 + b"Broken \xff\xfe byte here.", "scanned",
        "invalid UTF-8 sequences replaced")
    words = [" ".join(rng.choice(string.ascii_lowercase) * rng.randint(2, 8) for _ in range(12)) for _ in range(800)]
    add("run_on.txt", " ".join(words), "scanned")  # ~60k characters, not one full stop
    add("no_spaces.txt", "".join(rng.choice(string.ascii_letters) for _ in range(250_000)), "scanned")
    add("image.txt", _png(), "skipped", "binary file: a PNG image")
    add("archive.txt", _zip(), "skipped", "binary file: a zip archive")
    add("empty.txt", b"", "skipped", "empty file")
    add("README", "no suffix", "skipped", "unsupported file type")
    write_big_text(root / "huge.txt", BIG)
    expected["huge.txt"] = ("skipped", "over the 20 MB limit")
    add("folder.txt/inside.txt", "A folder named like a text file holds this document.", "scanned")
    os.mkfifo(root / "pipe.txt")
    expected["pipe.txt"] = ("skipped", "not a regular file: a named pipe (FIFO)")
    os.symlink(root / "missing.txt", root / "broken.txt")
    expected["broken.txt"] = ("skipped", "broken symlink")
    os.symlink(root / "loop.txt", root / "loop.txt")
    expected["loop.txt"] = ("skipped", "symlink loop")
    os.symlink(root / "good.txt", root / "link_inside.txt")
    expected["link_inside.txt"] = ("scanned", None)
    write(outside / "secret_source.txt", "Text outside the scanned folder must not be read unless asked.")
    os.symlink(outside / "secret_source.txt", root / "link_outside.txt")
    expected["link_outside.txt"] = ("skipped", "symlink points outside the scanned folder (pass --follow-symlinks")
    (root / os.fsdecode(b"bad\xffname.txt")).write_text("A name that is not UTF-8.")
    expected["bad\\xffname.txt"] = ("skipped", "file name is not valid UTF-8")
    add("secret.txt", "Only the owner may read this sentence in the file.", "scanned")
    (root / "secret.txt").chmod(0)
    if not IS_ROOT:  # root reads it anyway; test_permission_denied_even_as_root covers the reason then
        expected["secret.txt"] = ("skipped", "permission denied")
        write(root / "locked" / "hidden_inside.txt", "cannot be listed")
        (root / "locked").chmod(0)
        expected["locked"] = ("skipped", "folder cannot be read: Permission denied")
    return expected


def on_disk(root: Path) -> set[str]:
    """Every entry a user would expect in the documents table: files, links, pipes (folders are walked)."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            found.add(Path(dirpath, name).relative_to(root).as_posix())
    return {f.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for f in found}


@pytest.fixture
def hostile(tmp_path):
    root, outside = tmp_path / "inbox", tmp_path / "elsewhere"
    expected = build_hostile_folder(root, outside)
    yield root, expected
    for path in (root / "secret.txt", root / "locked"):
        if path.exists():
            path.chmod(0o755)
    (root / "huge.txt").unlink()  # pytest keeps recent temp folders: don't keep 200 MB in them


def docs_by_id(out: Path) -> dict[str, dict]:
    return {r["doc"]: r for r in pq.read_table(out.with_name(f"{out.stem}.docs.parquet")).to_pylist()}


def test_hostile_folder_is_scanned_and_every_file_accounted_for(hostile, tmp_path, local_engine):
    root, expected = hostile
    out = tmp_path / "report.parquet"
    config = ScanConfig.from_options(embedder="hashing", cache=False)
    result = run_scan([root], config, out, engine=local_engine)

    docs = docs_by_id(out)
    assert set(docs) == set(expected) == on_disk(root) | ({"locked"} if not IS_ROOT else set())
    for doc, (status, reason) in expected.items():
        assert docs[doc]["status"] == status, (doc, docs[doc]["reason"])
        if reason is not None:
            assert reason in (docs[doc]["reason"] or ""), (doc, docs[doc]["reason"])
        if status == "skipped":
            assert docs[doc]["reason"], doc  # every skip says why
            assert docs[doc]["sentences"] == 0
        else:
            assert docs[doc]["sentences"] > 0, doc
    assert result.counts["documents_scanned"] == sum(s == "scanned" for s, _ in expected.values())

    # decoded correctly: the legacy-encoded copies match their UTF-8 originals exactly
    pairs = {(r["doc_a"], r["doc_b"], r["text_a"]) for r in pq.read_table(out).to_pylist() if r["match"] == "exact"}
    assert ("cp1252.txt", "good.txt", SHARED_CP1252) in pairs
    assert ("utf16.txt", "ünïcødé 文件.md", SHARED_UTF16) in pairs
    assert ("good.txt", "name with spaces.txt", SHARED_SPACES) in pairs
    assert docs["utf16.txt"]["encoding"] == "utf-16"
    assert docs["latin1.txt"]["encoding"] in ("cp1252", "latin-1")
    assert docs["huge.txt"]["bytes"] == BIG and docs["huge.txt"]["sha256"] is None  # never read

    # run-on text and a 250k-character token are cut into bounded sentences that still cover all of the text
    from scanner.segment import SegmentConfig, sentence_spans

    for name in ("run_on.txt", "no_spaces.txt"):
        text = (root / name).read_text()
        spans = sentence_spans(text, SegmentConfig())
        assert max(e - s for s, e in spans) <= SegmentConfig().max_chars
        assert "".join("".join(text[s:e].split()) for s, e in spans) == "".join(text.split())
        assert docs[name]["sentences"] == len(spans)


def test_symlink_out_of_the_root_is_followed_only_when_asked(hostile):
    root, _ = hostile
    followed = {s.doc: read_source(s, IngestConfig(follow_symlinks=True))
                for s in discover([root], IngestConfig(follow_symlinks=True))}
    assert followed["link_outside.txt"].skip_reason is None
    assert "must not be read" in followed["link_outside.txt"].text
    assert followed["broken.txt"].skip_reason == "broken symlink"
    assert followed["loop.txt"].skip_reason == "symlink loop"


def test_oversized_file_costs_no_memory(tmp_path):
    big = tmp_path / "huge.txt"
    write_big_text(big, BIG)
    (src,) = discover([big], IngestConfig())
    tracemalloc.start()
    doc = read_source(src, IngestConfig())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert doc.text is None and "over the 20 MB limit" in doc.skip_reason
    assert peak < 1_000_000
    # under a raised cap it is read, and what is read is bounded by the cap
    capped = read_source(src, IngestConfig(max_bytes=BIG))
    assert capped.skip_reason is None and capped.size == BIG
    big.unlink()


def test_permission_denied_even_as_root(tmp_path):
    """chmod 000 does not stop root, so the read runs in a child process that gives up root first."""
    folder = Path(tempfile.mkdtemp(prefix="scanner-perm-"))  # pytest's tmp folders are private to root
    try:
        folder.chmod(0o755)
        path = write(folder / "secret.txt", "Only the owner may read this.")
        path.chmod(0)
        (src,) = discover([path], IngestConfig())
        read, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop to 'nobody' when root, then read
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                os.write(write_end, (read_source(src, IngestConfig()).skip_reason or "read").encode())
            finally:
                os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        with os.fdopen(read, "rb") as fh:
            assert fh.read().decode() == "permission denied"
    finally:
        (folder / "secret.txt").chmod(0o644)
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
