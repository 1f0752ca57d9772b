"""Turn uploaded files into text: plain text, Markdown, HTML, PDF, Word (.docx)
and JSON / JSON Lines records.

Two steps, so the web side can refuse a wrong upload before staging it:
`check_type()` decides the type from the name and the first bytes (HTTP 415 on
a mismatch); `extract()` (worker side) turns the whole file into texts and
turns every parser failure into an `ExtractionError` with a user-facing reason.
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import docx
import pypdf
from docx.table import Table

# pypdf logs a warning for every small defect it repairs; the outcome is what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class ExtractionError(ValueError):
    """The file cannot be turned into text; str(exc) is a user-facing reason."""


class UnsupportedType(ValueError):
    """The upload is refused at once: unknown extension, or the content contradicts it."""


@dataclass(frozen=True)
class ExtractedText:
    source: str  # the filename, or "name.jsonl[3]" for the 4th record of a JSON file
    text: str
    external_id: str | None = None  # a JSON record's "id"
    metadata: dict = field(default_factory=dict)  # a JSON record's "metadata"
    error: str | None = None  # why this JSON record cannot be read; the file's other records can


_TYPES = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".json": "json",
    ".jsonl": "jsonl",
}
_TEXT_TYPES = {"txt", "md", "html", "json", "jsonl"}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(_TYPES))
SNIFF_BYTES = 4096

_ZIP_MAGIC = b"PK\x03\x04"
_PDF_MAGIC = b"%PDF-"
_BOM = b"\xef\xbb\xbf"
_NO_TEXT = "the file holds no text"


def is_supported(filename: str) -> bool:
    return Path(filename).suffix.lower() in _TYPES


def check_type(filename: str, head: bytes) -> str:
    """The canonical type ('txt', 'md', 'html', 'pdf', 'docx', 'json', 'jsonl'),
    decided by the extension and confirmed by the first SNIFF_BYTES bytes."""
    suffix = Path(filename).suffix.lower()
    kind = _TYPES.get(suffix)
    if kind is None:
        raise UnsupportedType(
            f"unsupported file type {suffix or '(no extension)'}; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    head = head[:SNIFF_BYTES]
    # The PDF specification lets readers accept junk before the header within 1 KiB.
    looks_pdf = _PDF_MAGIC in head[:1024]
    looks_zip = head.startswith(_ZIP_MAGIC)
    if kind == "pdf" and head and not looks_pdf:
        raise UnsupportedType(f"{filename} is not a PDF file")
    if kind == "docx" and head and not looks_zip:
        raise UnsupportedType(f"{filename} is not a Word (.docx) document")
    if kind in _TEXT_TYPES:
        if looks_pdf and head.lstrip(_BOM + b" \t\r\n").startswith(_PDF_MAGIC):
            raise UnsupportedType(f"{filename} is a PDF file, not {suffix}")
        if looks_zip or b"\x00" in head:
            raise UnsupportedType(f"{filename} is a binary file, not {suffix}")
    if kind in ("json", "jsonl"):
        start = head.removeprefix(_BOM).lstrip()[:1]
        if start and start not in (b"{", b"["):
            raise UnsupportedType(f"{filename} does not hold JSON records")
    return kind


def extract(filename: str, data: bytes, *, max_chars: int) -> list[ExtractedText]:
    """All texts in the file: one for a document, one per record for JSON / JSONL
    (a record that cannot be read comes with its `error` instead of text)."""
    if not data or data.isspace():  # isspace: no copy of a large upload
        raise ExtractionError(_NO_TEXT)
    try:
        kind = check_type(filename, data[:SNIFF_BYTES])
    except UnsupportedType as exc:  # the worker reports reasons, it does not answer 415
        raise ExtractionError(str(exc)) from None
    if kind in ("json", "jsonl"):
        texts = _json_records(filename, _decode(data), kind, max_chars)
    else:
        text = _EXTRACTORS[kind](data, max_chars)
        _check_length(len(text), max_chars)
        texts = [ExtractedText(filename, text)]
    if not any(t.text.strip() or t.error for t in texts):
        raise ExtractionError(_NO_TEXT)
    return texts


def _check_length(length: int, max_chars: int) -> None:
    if length > max_chars:
        raise ExtractionError(f"the text is longer than the limit of {max_chars:,} characters")


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractionError(f"the file is not valid UTF-8 text (bad byte at offset {exc.start})") from None
    if "\x00" in text:
        raise ExtractionError("the file contains NUL bytes, so it is not a text file")
    return text


def _plain_text(data: bytes, max_chars: int) -> str:
    return _decode(data)


# --- HTML ------------------------------------------------------------------

_INVISIBLE = {"script", "style", "title", "noscript", "template"}
# Anything else opens the body even without <body>, as browsers do.
_HEAD_CONTENT = {"base", "link", "meta", "noscript", "script", "style", "template", "title"}
_BLOCKS = {
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tr",
    "ul",
}


class _VisibleText(HTMLParser):
    """Collects the text a browser would show; block elements become paragraphs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # decodes &amp; &#233; etc. in handle_data
        self.parts: list[str] = []
        self.hidden = 0  # depth inside invisible elements
        self.in_head = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "head":
            self.in_head = True
        elif tag not in _HEAD_CONTENT:  # a missing </head> must not hide the body
            self.in_head = False
        if tag in _INVISIBLE:
            self.hidden += 1
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False
        elif tag in _INVISIBLE:
            self.hidden = max(0, self.hidden - 1)
        self._break(tag)

    def handle_data(self, data: str) -> None:
        if not self.hidden and not self.in_head:
            self.parts.append(re.sub(r"\s+", " ", data))

    def _break(self, tag: str) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")


def _html_text(data: bytes, max_chars: int) -> str:
    parser = _VisibleText()
    try:
        parser.feed(_decode(data))
        parser.close()
    except ExtractionError:
        raise
    except Exception:
        raise ExtractionError("the HTML could not be read") from None
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    # Re-join stripped lines; a run of empty lines is one paragraph break.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- PDF -------------------------------------------------------------------


def _pdf_text(data: bytes, max_chars: int) -> str:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _opens_without_password(reader):
            raise ExtractionError("the PDF is encrypted; upload an unprotected copy")
        pages: list[str] = []
        total = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            total += len(text)
            _check_length(total, max_chars)  # stop at once, not after the last page
            pages.append(text)
    except ExtractionError:
        raise
    except Exception:  # pypdf raises many kinds (PdfReadError, KeyError, ValueError, ...)
        raise ExtractionError("the PDF is damaged or not a valid PDF file") from None
    text = "\n\n".join(pages)
    if not text.strip():
        raise ExtractionError("the PDF holds no extractable text (it may be scanned images)")
    return text


def _opens_without_password(reader: pypdf.PdfReader) -> bool:
    """Many PDFs are encrypted only to restrict printing or copying, with an
    empty user password; those can be read."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # e.g. AES without the optional crypto dependency
        return False


# --- Word (.docx) ----------------------------------------------------------


def _docx_text(data: bytes, max_chars: int) -> str:
    _check_unpacked_size(data, max_chars * 4)
    try:
        document = docx.Document(io.BytesIO(data))
        return "\n\n".join(block for block in _docx_blocks(document) if block.strip())
    except Exception:  # python-docx raises KeyError, BadZipFile, ValueError, lxml errors, ...
        raise ExtractionError("the file is not a valid Word (.docx) document") from None


def _check_unpacked_size(data: bytes, limit: int) -> None:
    """Zip-bomb defence before any parser unpacks a member. The sizes come from
    the archive's directory; zipfile never inflates a member past its declared
    size (a lie fails the CRC check), so the sum is a real bound."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except Exception:
        raise ExtractionError("the file is not a valid Word (.docx) document") from None
    if "word/document.xml" not in {m.filename for m in members}:
        raise ExtractionError("the file is not a Word (.docx) document")
    if sum(m.file_size for m in members) > limit:
        raise ExtractionError(f"the document would unpack past the limit of {limit:,} bytes")


def _docx_blocks(container: Any) -> Iterator[str]:
    """Paragraph and table text in document order; a table row is one line,
    its cells separated by tabs (a merged cell is listed once)."""
    for item in container.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells, seen = [], set()
                for cell in row.cells:
                    if id(cell._tc) not in seen:
                        seen.add(id(cell._tc))
                        cells.append(" ".join("\n".join(_docx_blocks(cell)).split()))
                yield "\t".join(cells)
        else:
            yield item.text


_EXTRACTORS = {
    "txt": _plain_text,
    "md": _plain_text,
    "html": _html_text,
    "pdf": _pdf_text,
    "docx": _docx_text,
}


# --- JSON / JSON Lines -----------------------------------------------------


def _json_records(filename: str, text: str, kind: str, max_chars: int) -> list[ExtractedText]:
    """One text per record. A record that cannot be read fails alone (its
    `error` says why) unless it is the whole file: a single .json object."""
    if kind == "json":
        value = _parse_json(text, "")
        if isinstance(value, dict):
            records = [_record(filename, "", value)]
        elif isinstance(value, list):
            records = [_alone(f"{filename}[{i}]", "", item) for i, item in enumerate(value)]
        else:
            raise ExtractionError("a .json file must hold an object or an array of objects")
    else:
        lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
        records = [_alone(f"{filename}[{i}]", f"line {n}: ", line, raw=True) for i, (n, line) in enumerate(lines)]
    _check_length(sum(len(r.text) for r in records), max_chars)
    return records


def _alone(source: str, where: str, value: Any, *, raw: bool = False) -> ExtractedText:
    """The record, or the reason it cannot be read (`raw`: `value` is the
    record's JSON text, still to parse)."""
    try:
        return _record(source, where, _parse_json(value, where) if raw else value)
    except ExtractionError as exc:
        return ExtractedText(source, "", error=str(exc))


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # A JSON Lines record is one line, already named in `where`.
        position = f"column {exc.colno}" if where else f"line {exc.lineno}, column {exc.colno}"
        raise ExtractionError(f"{where}not valid JSON ({exc.msg} at {position})") from None
    except RecursionError:
        raise ExtractionError(f"{where}the JSON is nested too deeply") from None


def _record(source: str, where: str, value: Any) -> ExtractedText:
    if not isinstance(value, dict):
        raise ExtractionError(f"{where}each record must be a JSON object")
    text = value.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ExtractionError(f'{where}the record needs a "text" field holding non-blank text')
    external_id = value.get("id")
    if external_id is not None and not isinstance(external_id, str):
        raise ExtractionError(f'{where}"id" must be a string')
    metadata = value.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ExtractionError(f'{where}"metadata" must be an object')
    return ExtractedText(source, text, external_id, metadata or {})
