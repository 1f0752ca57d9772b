"""Uploaded files become text; every fixture is built here, in memory."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pypdf
import pytest

from app.search.extract import (
    SNIFF_BYTES,
    SUPPORTED_EXTENSIONS,
    ExtractedText,
    ExtractionError,
    UnsupportedType,
    check_type,
    extract,
    is_supported,
)
from tests.files import make_docx, make_docx_bomb, make_pdf

LIMIT = 1_000_000


def only_text(filename: str, data: bytes, max_chars: int = LIMIT) -> str:
    (item,) = extract(filename, data, max_chars=max_chars)
    assert item.source == filename
    return item.text


# --- plain text --------------------------------------------------------------


def test_plain_text_and_markdown_are_returned_as_is():
    assert only_text("a.txt", "Grüße\nzwei".encode()) == "Grüße\nzwei"
    assert only_text("b.md", b"\xef\xbb\xbf# Title\n\nBody") == "# Title\n\nBody"


def test_invalid_utf8_is_an_extraction_error():
    with pytest.raises(ExtractionError, match="UTF-8"):
        extract("a.txt", b"caf\xe9 au lait", max_chars=LIMIT)


def test_text_over_the_limit_is_refused():
    with pytest.raises(ExtractionError, match="limit"):
        extract("a.txt", b"x" * 101, max_chars=100)


@pytest.mark.parametrize("data", [b"", b"  \n\t "])
def test_a_file_without_text_is_refused(data):
    with pytest.raises(ExtractionError, match="no text"):
        extract("a.txt", data, max_chars=LIMIT)


# --- HTML --------------------------------------------------------------------


def test_html_keeps_only_visible_text():
    page = b"""<!doctype html><html><head><title>Tab title</title>
    <style>body { color: red }</style><script>var secret = 1;</script></head>
    <body><h1>Fish &amp; Chips</h1><p>Caf&eacute;   open
    daily</p><script>alert("x")</script><p>Line one<br>Line two</p></body></html>"""
    text = only_text("page.html", page)
    assert "Fish & Chips" in text
    assert "Café open daily" in text
    assert "Line one\nLine two" in text
    for hidden in ("Tab title", "color", "secret", "alert"):
        assert hidden not in text
    assert "Fish & Chips\n\nCafé open daily" in text  # block elements stay apart


def test_html_without_closing_head_still_shows_the_body():
    assert only_text("p.htm", b"<head><title>T</title><p>Visible body</p>") == "Visible body"


# --- PDF ---------------------------------------------------------------------


def test_pdf_text_is_extracted():
    assert "Hello quarry pdf" in only_text("doc.pdf", make_pdf())


def test_encrypted_pdf_is_refused():
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf())))
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ExtractionError, match="encrypted"):
        extract("locked.pdf", buffer.getvalue(), max_chars=LIMIT)


def test_corrupt_pdf_is_an_extraction_error():
    with pytest.raises(ExtractionError, match="PDF"):
        extract("bad.pdf", b"%PDF-1.4\n garbage", max_chars=LIMIT)


def test_pdf_over_the_limit_is_refused():
    with pytest.raises(ExtractionError, match="limit"):
        extract("doc.pdf", make_pdf(), max_chars=5)


# --- Word --------------------------------------------------------------------


def test_docx_paragraphs_and_table_cells_are_extracted():
    text = only_text("report.docx", make_docx())
    assert text.index("First paragraph") < text.index("Region") < text.index("Closing words.")
    assert "Region\tRevenue" in text
    assert "North\t42" in text


def test_docx_zip_bomb_is_refused_from_the_directory_sizes():
    with pytest.raises(ExtractionError, match="limit"):
        extract("bomb.docx", make_docx_bomb(60_000_000), max_chars=1_000_000)


def test_a_zip_that_is_not_a_word_document_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ExtractionError, match="Word"):
        extract("fake.docx", buffer.getvalue(), max_chars=LIMIT)


def test_a_broken_word_document_is_an_extraction_error():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<not-closed")
    with pytest.raises(ExtractionError, match="Word"):
        extract("broken.docx", buffer.getvalue(), max_chars=LIMIT)


# --- JSON / JSON Lines -------------------------------------------------------


def test_json_array_gives_one_text_per_record():
    records = [
        {"id": "a1", "text": "First", "metadata": {"lang": "en"}},
        {"text": "Second"},
    ]
    assert extract("docs.json", json.dumps(records).encode(), max_chars=LIMIT) == [
        ExtractedText("docs.json[0]", "First", "a1", {"lang": "en"}),
        ExtractedText("docs.json[1]", "Second", None, {}),
    ]


def test_json_single_object():
    data = b'{"id": "x", "text": "Only one"}'
    assert extract("one.json", data, max_chars=LIMIT) == [ExtractedText("one.json", "Only one", "x")]


def test_jsonl_records_skip_blank_lines():
    data = b'{"id": "a", "text": "alpha"}\n\n{"text": "beta", "metadata": {"n": 2}}\r\n'
    assert extract("d.jsonl", data, max_chars=LIMIT) == [
        ExtractedText("d.jsonl[0]", "alpha", "a"),
        ExtractedText("d.jsonl[1]", "beta", None, {"n": 2}),
    ]


@pytest.mark.parametrize(
    "filename, data, reason",
    [
        ("d.jsonl", b'{"text": "ok"}\n{"text": \n', "^line 2: not valid JSON"),
        ("d.jsonl", b'{"text": "ok"}\n\n["not", "an object"]\n', "^line 3: .*object"),
        ("d.json", b'[{"text": "ok"}, {"text": "   "}]', "text"),
        ("d.json", b'[{"text": "ok"}, {"body": "no text"}]', "text"),
        ("d.json", b'[{"text": "ok"}, {"text": "ok", "id": 7}]', "id"),
        ("d.json", b'[{"text": "ok"}, {"text": "ok", "metadata": [1]}]', "metadata"),
        ("d.json", b'[{"text": "ok"}, 2]', "object"),
    ],
)
def test_a_bad_record_fails_alone_beside_the_good_one(filename, data, reason):
    good, bad = extract(filename, data, max_chars=LIMIT)
    assert good == ExtractedText(f"{filename}[0]", "ok")
    assert (bad.source, bad.text) == (f"{filename}[1]", "") and re.search(reason, bad.error)


@pytest.mark.parametrize(
    "filename, data, reason",
    [
        ("d.json", b'{"text": "ok",', "not valid JSON"),
        ("d.json", b'{"body": "no text"}', "text"),
        ("d.json", b"7", "JSON records"),
        ("d.json", b"[]", "no text"),
        ("d.jsonl", b"\n\n", "no text"),
    ],
)
def test_a_json_file_that_cannot_be_read_at_all_fails_as_a_file(filename, data, reason):
    with pytest.raises(ExtractionError, match=reason):
        extract(filename, data, max_chars=LIMIT)


def test_a_file_of_bad_records_reports_each():
    texts = extract("d.jsonl", b'{"text": 1}\n[]\n', max_chars=LIMIT)
    assert [(t.source, t.error is not None) for t in texts] == [("d.jsonl[0]", True), ("d.jsonl[1]", True)]


def test_json_records_over_the_limit_are_refused():
    data = json.dumps([{"text": "x" * 60}, {"text": "y" * 60}]).encode()
    with pytest.raises(ExtractionError, match="limit"):
        extract("d.json", data, max_chars=100)


# --- type checks -------------------------------------------------------------


def test_supported_extensions():
    assert SUPPORTED_EXTENSIONS == (
        ".docx",
        ".htm",
        ".html",
        ".json",
        ".jsonl",
        ".markdown",
        ".md",
        ".pdf",
        ".text",
        ".txt",
    )
    assert is_supported("A.PDF") and not is_supported("setup.exe") and not is_supported("README")


@pytest.mark.parametrize(
    "filename, head, kind",
    [
        ("a.txt", b"hello", "txt"),
        ("a.text", b"hello", "txt"),
        ("a.markdown", b"# hi", "md"),
        ("a.HTM", b"<p>hi</p>", "html"),
        ("a.pdf", None, "pdf"),
        ("a.pdf", b"\xef\xbb\xbf junk\n%PDF-1.7\n", "pdf"),
        ("a.docx", None, "docx"),
        ("a.json", b'\xef\xbb\xbf  [{"text": "x"}]', "json"),
        ("a.jsonl", b'{"text": "x"}\n', "jsonl"),
        ("empty.pdf", b"", "pdf"),
    ],
)
def test_check_type_accepts_matching_content(filename, head, kind):
    if head is None:
        head = (make_pdf() if kind == "pdf" else make_docx())[:SNIFF_BYTES]
    assert check_type(filename, head) == kind


@pytest.mark.parametrize(
    "filename, head",
    [
        ("a.txt", b"%PDF-1.4\n..."),
        ("a.md", b"PK\x03\x04rest"),
        ("a.html", b"<p>\x00\x00</p>"),
        ("a.json", b"%PDF-1.4"),
        ("a.pdf", b"just some text"),
        ("a.docx", b"not a zip at all"),
        ("a.json", b"hello"),
        ("a.jsonl", b"id,text\n1,x"),
        ("setup.exe", b"MZ"),
        ("README", b"hello"),
    ],
)
def test_check_type_refuses_contradicting_content(filename, head):
    with pytest.raises(UnsupportedType):
        check_type(filename, head)


def test_extract_reports_a_wrong_type_as_an_extraction_error():
    with pytest.raises(ExtractionError, match="PDF"):
        extract("notes.txt", make_pdf(), max_chars=LIMIT)
    with pytest.raises(ExtractionError, match="unsupported"):
        extract("setup.exe", b"MZ", max_chars=LIMIT)
