"""Files of each upload format, built in memory for the tests (no binary
fixtures are committed)."""

from __future__ import annotations

import io
import zipfile

import docx

from devstack import pdf


def make_pdf(sentence: str = "Hello quarry pdf") -> bytes:
    return pdf.make_pdf(sentence)


def make_docx(first: str = "First paragraph of the report.") -> bytes:
    document = docx.Document()
    document.add_paragraph(first)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Region"
    table.cell(0, 1).text = "Revenue"
    table.cell(1, 0).text = "North"
    table.cell(1, 1).text = "42"
    document.add_paragraph("Closing words.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_docx_bomb(expanded_bytes: int) -> bytes:
    """A .docx-shaped ZIP whose document.xml deflates from a few KB to
    `expanded_bytes` of spaces."""
    body = b'<?xml version="1.0"?><w:document><w:body>' + b" " * expanded_bytes + b"</w:body></w:document>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", body)
    return buffer.getvalue()
