"""Turn uploaded files into text. One function per supported type."""

from __future__ import annotations

from pathlib import Path


class ExtractionError(ValueError):
    """The file cannot be turned into text; the message says why."""


def _plain_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractionError(f"not valid UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise ExtractionError("contains NUL bytes; not a text file")
    return text


EXTRACTORS = {
    ".txt": _plain_text,
    ".text": _plain_text,
    ".md": _plain_text,
    ".markdown": _plain_text,
}

SUPPORTED_EXTENSIONS = tuple(sorted(EXTRACTORS))


def is_supported(filename: str) -> bool:
    return Path(filename).suffix.lower() in EXTRACTORS


def extract_text(filename: str, data: bytes) -> str:
    extractor = EXTRACTORS.get(Path(filename).suffix.lower())
    if extractor is None:
        raise ExtractionError(f"unsupported file type {Path(filename).suffix or '(none)'}")
    text = extractor(data)
    if not text.strip():
        raise ExtractionError("the file holds no text")
    return text
