"""Ingest stage: find the files to scan and decode them to text.

Every file found is accounted for: it is either decoded (``Document``) or skipped with a reason the user can
read in the documents table. Nothing here raises on a bad file; only unusable arguments raise ``InputError``.
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from scanner.errors import InputError

FORMATS = {
    ".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".rst": "text",
    ".html": "html", ".htm": "html", ".xhtml": "html",
}
MAGIC = {
    b"\x89PNG": "a PNG image", b"PK\x03\x04": "a zip archive", b"%PDF": "a PDF (convert it to text first)",
    b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"\x1f\x8b": "a gzip archive",
    b"\x7fELF": "an executable", b"\xd0\xcf\x11\xe0": "an old Office document",
}


@dataclass(frozen=True)
class IngestConfig:
    """Which files to read and how much of them.

    ``include``/``exclude`` are glob patterns matched against the document id (the path relative to the
    scanned root) and the file name. Files of other types inside a folder are listed as skipped unless
    excluded; a file named explicitly is read as text whatever its suffix. ``max_bytes`` caps what is read
    of one file, so memory stays bounded: larger files are skipped with that reason.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_bytes: int = 20_000_000
    follow_symlinks: bool = False
    include_hidden: bool = False


@dataclass(frozen=True)
class Source:
    """A file found under a scanned root. ``doc`` is its id: the path relative to the scanned root."""

    doc: str
    path: str
    format: str | None  # None: not a supported type (skipped unless named explicitly)
    skip_reason: str | None = None


@dataclass
class Document:
    """The outcome of reading one source: decoded ``text``, or ``skip_reason``."""

    doc: str
    path: str
    format: str | None
    text: str | None = None
    encoding: str | None = None
    size: int | None = None
    sha256: str | None = None
    skip_reason: str | None = None
    notes: list[str] = field(default_factory=list)


def _matches(doc: str, patterns: tuple[str, ...]) -> bool:
    name = doc.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(doc, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _doc_id(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix() if path != base else path.name


def printable(name: str) -> str:
    """``name`` as valid UTF-8: bytes a file name holds that are not UTF-8 (kept by Python as surrogate
    escapes, which Arrow cannot store) are shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _source(doc: str, path: Path, fmt: str | None, problem: str | None) -> Source:
    """A ``Source`` whose id and path can be stored in Arrow; a name that is not valid UTF-8 is skipped."""
    shown_doc, shown_path = printable(doc), printable(str(path))
    if problem is None and (shown_doc != doc or shown_path != str(path)):
        problem = "file name is not valid UTF-8 (rename the file to scan it)"
    return Source(shown_doc, shown_path, fmt, problem)


def discover(paths: list[str | os.PathLike[str]], config: IngestConfig) -> list[Source]:
    """All files under ``paths`` (files or folders, recursive), sorted by document id.

    With one folder the ids are relative to it; with several paths, relative to their common parent so
    they stay unique. Symlinks that leave the root, broken links and loops are reported, not followed.
    """
    if not paths:
        raise InputError("no input paths given: pass one or more files or folders to scan")
    roots: list[Path] = []
    for p in paths:
        path = Path(p)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"input path {str(p)!r} does not exist")
        roots.append(Path(os.path.abspath(path)))
    if len(roots) == 1:
        base = roots[0] if roots[0].is_dir() else roots[0].parent
    else:
        base = Path(os.path.commonpath([r if r.is_dir() else r.parent for r in roots]))
    found: dict[str, Source] = {}
    for root in roots:
        if root.is_dir():
            for src in _walk(root, base, config):
                found.setdefault(src.doc, src)
        else:
            doc = _doc_id(root, base)
            src = _source(doc, root, FORMATS.get(root.suffix.lower(), "text"), _link_problem(root, root.parent, config))
            found.setdefault(src.doc, src)
    return [found[k] for k in sorted(found)]


def _link_problem(path: Path, root: Path, config: IngestConfig) -> str | None:
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return "broken symlink"
    except RuntimeError:
        return "symlink loop"
    except OSError as exc:
        return f"symlink cannot be resolved ({exc.strerror or exc})"
    if not config.follow_symlinks and not target.is_relative_to(root.resolve()):
        return "symlink points outside the scanned folder (pass --follow-symlinks to read it)"
    if target.is_dir():
        return "symlink to a folder (not followed)"
    return None


def _walk(root: Path, base: Path, config: IngestConfig) -> list[Source]:
    out: list[Source] = []
    seen_dirs: set[tuple[int, int]] = set()

    def unreadable_folder(exc: OSError) -> None:  # os.walk would otherwise drop a folder it cannot list
        folder = Path(exc.filename)
        out.append(_source(_doc_id(folder, base), folder, None, f"folder cannot be read: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=config.follow_symlinks, onerror=unreadable_folder):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:  # a loop via followed symlinks
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        if not config.include_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        dirnames.sort()
        if not config.follow_symlinks:  # os.walk lists linked folders but does not enter them: say so
            for d in dirnames:
                link = Path(dirpath) / d
                if link.is_symlink():
                    out.append(_source(_doc_id(link, base), link, None, _link_problem(link, root, config)))
        for name in sorted(filenames):
            if name.startswith(".") and not config.include_hidden:
                continue
            path = Path(dirpath) / name
            doc = _doc_id(path, base)
            if config.exclude and _matches(doc, config.exclude):
                continue
            fmt = FORMATS.get(path.suffix.lower())
            if config.include:
                if not _matches(doc, config.include):
                    continue
                fmt = fmt or "text"
            problem = _link_problem(path, root, config)
            if fmt is None and problem is None:
                problem = f"unsupported file type {path.suffix or '(no suffix)'!r} (use --include to read it as text)"
            out.append(_source(doc, path, fmt, problem))
    return out


def _sniff_binary(head: bytes) -> str | None:
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            return f"binary file: {what}"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    if b"\x00" in head:
        return "binary file (contains NUL bytes)"
    return None


def decode_bytes(raw: bytes) -> tuple[str, str, list[str]]:
    """Decode text: BOMs first, then strict UTF-8, then cp1252, then Latin-1; returns (text, encoding, notes).

    Mostly-UTF-8 text with a few invalid bytes stays UTF-8 with the bad bytes replaced (and says so),
    because reading it as cp1252 would garble every valid multi-byte character.
    """
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            return raw.decode(enc, errors="replace"), enc, []
    try:
        return raw.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        pass
    replaced = raw.decode("utf-8", errors="replace")
    bad = replaced.count("\ufffd")
    multibyte = sum(1 for ch in replaced if ord(ch) > 127) - bad
    if multibyte > 2 * bad:
        return replaced, "utf-8", [f"{bad} invalid UTF-8 sequences replaced"]
    try:
        return raw.decode("cp1252"), "cp1252", ["not valid UTF-8; decoded as cp1252"]
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1", ["not valid UTF-8 or cp1252; decoded as latin-1"]


class _VisibleText(HTMLParser):
    """Collects the text a browser would show: no script, style, head or comments; blocks end lines."""

    HIDDEN = frozenset({"script", "style", "head", "noscript", "template", "svg", "title"})
    BLOCKS = frozenset({"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "table",
              "section", "article", "header", "footer", "blockquote", "pre", "hr", "dd", "dt", "figcaption", "main"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:  # collapse whitespace but keep it at the edges: "Second <b>bold</b> one"
            lead = " " if data[:1].isspace() else ""
            trail = " " if data[-1:].isspace() else ""
            self.parts.append(lead + " ".join(data.split()) + trail if data.strip() else " ")


def html_to_text(markup: str) -> str:
    """Visible text of an HTML document, paragraphs separated by blank lines."""
    parser = _VisibleText()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def _read_capped(path: str, max_bytes: int, doc: Document) -> bytes | None:
    """The bytes of a regular file of at most ``max_bytes``; else None with ``doc.skip_reason`` set.

    Opened non-blocking and checked with ``fstat`` before reading, so a FIFO or a device (for instance behind
    a followed symlink) is skipped instead of blocking the scan forever or reading without end; the size is
    checked before reading, so an oversized file costs no memory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        doc.size = st.st_size
        for is_kind, what in _NOT_REGULAR:
            if is_kind(st.st_mode):
                doc.skip_reason = f"not a regular file: {what}"
                return None
        if st.st_size > max_bytes:
            doc.skip_reason = (f"file is {st.st_size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit "
                               "(not read; raise --max-file-size to scan it)")
            return None
        return fh.read(max_bytes + 1)[:max_bytes]


def read_source(src: Source, config: IngestConfig) -> Document:
    """Read and decode one file; any problem becomes ``skip_reason``, never an exception."""
    doc = Document(src.doc, src.path, src.format)
    if src.skip_reason:
        doc.skip_reason = src.skip_reason
        return doc
    try:
        raw = _read_capped(src.path, config.max_bytes, doc)
    except PermissionError:
        doc.skip_reason = "permission denied"
        return doc
    except IsADirectoryError:
        doc.skip_reason = "is a folder"
        return doc
    except OSError as exc:
        doc.skip_reason = f"cannot read: {exc.strerror or exc}"
        return doc
    if raw is None:
        return doc
    doc.size = len(raw)
    doc.sha256 = hashlib.sha256(raw).hexdigest()
    if not raw.strip():
        doc.skip_reason = "empty file"
        return doc
    binary = _sniff_binary(raw[:8192])
    if binary:
        doc.skip_reason = binary
        return doc
    text, doc.encoding, doc.notes = decode_bytes(raw)
    if src.format == "html":
        text = html_to_text(text)
    if not text.strip():
        doc.skip_reason = "no visible text"
        return doc
    doc.text = text
    return doc
