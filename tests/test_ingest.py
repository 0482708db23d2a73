from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest
from conftest import write

from scanner.errors import InputError
from scanner.ingest import IngestConfig, decode_bytes, discover, html_to_text, read_source


def read_all(root: Path, config: IngestConfig | None = None) -> dict[str, object]:
    config = config or IngestConfig()
    return {s.doc: read_source(s, config) for s in discover([root], config)}


@pytest.mark.parametrize("raw,text,encoding", [
    ("café naïve".encode(), "café naïve", "utf-8"),
    (codecs.BOM_UTF8 + "café".encode(), "café", "utf-8-sig"),
    ("café “quotes”".encode("cp1252"), "café “quotes”", "cp1252"),
    ("Grüße".encode("utf-16"), "Grüße", "utf-16"),
])
def test_decode(raw, text, encoding):
    got, enc, _ = decode_bytes(raw)
    assert (got, enc) == (text, encoding)


def test_mostly_utf8_with_a_bad_byte_stays_utf8():
    raw = "naïve café résumé déjà vu ".encode() * 3 + b"\xff end"
    text, enc, notes = decode_bytes(raw)
    assert enc == "utf-8" and "café" in text and "\ufffd" in text
    assert "1 invalid UTF-8" in notes[0]


def test_html_visible_text_only():
    html = ("<html><head><title>T</title><style>p{}</style><script>var x = 'hidden';</script></head>"
            "<body><h1>Title</h1><p>First   line &amp; more.</p><!-- comment --><p>Second <b>bold</b> one.</p></body></html>")
    assert html_to_text(html) == "Title\n\nFirst line & more.\n\nSecond bold one."


def test_ids_relative_to_root_and_sorted(tmp_path):
    write(tmp_path / "b.txt", "Beta text here.")
    write(tmp_path / "sub dir" / "ä.md", "Alpha text here.")
    docs = read_all(tmp_path)
    assert list(docs) == ["b.txt", "sub dir/ä.md"]
    assert docs["sub dir/ä.md"].format == "markdown"


def test_several_roots_use_common_parent(tmp_path):
    write(tmp_path / "new" / "a.txt", "one")
    write(tmp_path / "old" / "a.txt", "two")
    ids = [s.doc for s in discover([tmp_path / "new", tmp_path / "old"], IngestConfig())]
    assert ids == ["new/a.txt", "old/a.txt"]


def test_include_exclude(tmp_path):
    write(tmp_path / "keep.txt", "x")
    write(tmp_path / "drafts" / "skip.txt", "x")
    write(tmp_path / "data.csv", "x")
    ids = [s.doc for s in discover([tmp_path], IngestConfig(exclude=("drafts/*",)))]
    assert ids == ["data.csv", "keep.txt"]
    ids = [s.doc for s in discover([tmp_path], IngestConfig(include=("*.csv",)))]
    assert ids == ["data.csv"]


def test_bad_files_are_skipped_with_reasons(tmp_path):
    write(tmp_path / "good.txt", "A fine sentence lives here.")
    write(tmp_path / "empty.txt", "")
    write(tmp_path / "blank.txt", "  \n\n ")
    write(tmp_path / "image.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    write(tmp_path / "archive.txt", b"PK\x03\x04" + bytes(100))
    write(tmp_path / "nul.txt", b"abc\x00def")
    write(tmp_path / "photo.jpg", b"\xff\xd8\xff")
    write(tmp_path / "big.txt", "word " * 1000)
    os.symlink(tmp_path / "missing.txt", tmp_path / "broken.txt")
    os.symlink("/etc/hostname", tmp_path / "outside.txt")
    docs = read_all(tmp_path, IngestConfig(max_bytes=1000))
    reasons = {k: v.skip_reason for k, v in docs.items()}
    assert reasons["good.txt"] is None
    assert reasons["empty.txt"] == "empty file"
    assert reasons["blank.txt"] == "empty file"
    assert "PNG" in reasons["image.txt"]
    assert "zip" in reasons["archive.txt"]
    assert "NUL" in reasons["nul.txt"]
    assert "unsupported file type '.jpg'" in reasons["photo.jpg"]
    assert "over the" in reasons["big.txt"]
    assert reasons["broken.txt"] == "broken symlink"
    assert "outside the scanned folder" in reasons["outside.txt"]


def test_symlink_loop_and_linked_folder(tmp_path):
    write(tmp_path / "real" / "a.txt", "text")
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    docs = read_all(tmp_path)
    assert docs["real/a.txt"].skip_reason is None
    assert "folder" in docs["link"].skip_reason
    assert docs["loop"].skip_reason == "symlink loop"


# unreadable files: tests/test_hostile.py::test_permission_denied_even_as_root (it also runs as root)


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        discover([tmp_path / "nope"], IngestConfig())
