"""Every upload format through the service, with files the tests build: the
text each one yields is searchable, and a bad file fails alone."""

from __future__ import annotations

import json

import pytest

from tests.files import make_docx, make_docx_bomb, make_pdf
from tests.integration.corpora import unique
from tests.integration.problems import assert_problem

HTML = b"""<!doctype html><html><head><title>Not indexed title</title>
<style>body { color: red }</style><script>var hidden = "scriptword";</script></head>
<body><h1>Lighthouses</h1><p>Lighthouse keepers trimmed the lamp wick every night &amp; wound the clockwork.</p></body></html>"""
JSON_RECORDS = [
    {"id": "rec-a", "text": "Falconry trains hawks to hunt with a human partner.", "metadata": {"kind": "json"}},
    {"text": "Beekeepers wear veils when they open a hive."},
]
JSONL = (
    b'{"id": "line-a", "text": "Sourdough starters are kept alive with flour and water."}\n\n'
    b'{"id": "line-b", "text": "Kilns fire clay pottery at very high temperatures.", "metadata": {"kind": "jsonl"}}\n'
)


def upload(api, name, files, metadata=None):
    data = {"metadata": json.dumps(metadata)} if metadata else None
    return api.post(f"/api/v1/collections/{name}/documents", files=files, data=data)


def finished(api, response) -> dict:
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"], timeout=180)
    assert job["status"] == "succeeded", job
    return job["result"]


def top_text(api, name, query) -> str:
    job = api.search(name, query=query, pipeline="keyword", top_k=1)
    return job["result"]["hits"][0]["text"]


def test_each_format_yields_its_text(api):
    name = unique("formats")
    files = [
        ("files", ("notes.txt", b"Plain text about glassblowing furnaces.", "text/plain")),
        ("files", ("readme.md", b"# Title\n\nMarkdown about **tapestry** weaving.", "text/markdown")),
        ("files", ("page.html", HTML, "text/html")),
        ("files", ("paper.pdf", make_pdf("Quasars emit enormous energy from galactic cores"), "application/pdf")),
        ("files", ("report.docx", make_docx("Quarterly figures for the saffron harvest."), "application/octet-stream")),
        ("files", ("records.json", json.dumps(JSON_RECORDS).encode(), "application/json")),
        ("files", ("records.jsonl", JSONL, "application/x-ndjson")),
    ]
    result = finished(api, upload(api, name, files, metadata={"batch": 7}))
    assert result["failed"] == [] and result["documents"] == 9
    assert "glassblowing" in top_text(api, name, "glassblowing")
    assert "tapestry" in top_text(api, name, "tapestry")
    lighthouse = top_text(api, name, "lighthouse keepers")
    assert "clockwork" in lighthouse and "&" in lighthouse
    assert "scriptword" not in lighthouse and "color" not in lighthouse and "Not indexed" not in lighthouse
    assert "Quasars emit enormous energy" in top_text(api, name, "quasars")
    assert "saffron harvest" in top_text(api, name, "saffron")
    assert "Region\tRevenue" in top_text(api, name, "revenue")  # the docx table
    record = api.get(f"/api/v1/collections/{name}/documents/rec-a").json()
    assert record["metadata"] == {"filename": "records.json", "batch": 7, "kind": "json"}
    line = api.get(f"/api/v1/collections/{name}/documents/line-b").json()
    assert line["metadata"]["kind"] == "jsonl"
    assert "veils" in top_text(api, name, "beekeepers veils")  # a record without an id


def test_a_corrupt_pdf_fails_alone_beside_a_good_text_file(api):
    name = unique("corrupt")
    files = [
        ("files", ("good.txt", b"Carillons are bells played from a keyboard in a tower.", "text/plain")),
        ("files", ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", "application/pdf")),
    ]
    result = finished(api, upload(api, name, files))
    assert result["documents"] == 1
    assert [f["source"] for f in result["failed"]] == ["broken.pdf"]
    assert "PDF" in result["failed"][0]["error"]
    assert "Carillons" in top_text(api, name, "carillons")


def test_a_docx_zip_bomb_fails_alone(api):
    name = unique("bomb")
    files = [
        ("files", ("bomb.docx", make_docx_bomb(300_000_000), "application/octet-stream")),
        ("files", ("fine.md", b"Marimbas have wooden bars over resonator tubes.", "text/markdown")),
    ]
    result = finished(api, upload(api, name, files))
    assert result["documents"] == 1
    assert result["failed"][0]["source"] == "bomb.docx" and "limit" in result["failed"][0]["error"]


@pytest.mark.parametrize(
    "filename, content",
    [
        ("paper.pdf", b"just some text, not a PDF"),
        ("notes.txt", make_pdf("hidden")),
        ("report.docx", b"plain text pretending"),
        ("data.json", b"not json at all"),
        ("program.exe", b"MZ\x90\x00"),
    ],
)
def test_a_type_the_content_contradicts_is_415_and_creates_nothing(api, collection, filename, content):
    response = upload(api, collection, [("files", (filename, content, "application/octet-stream"))])
    assert_problem(response, 415, "unsupported_media_type")
    assert filename in response.json()["detail"]
