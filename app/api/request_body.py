"""The request class of the web: its body held to its declared length and to
MAX_CONTENT_LENGTH, and JSON too deeply nested refused as a problem."""

from __future__ import annotations

from flask import Request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, RequestTimeout
from werkzeug.wsgi import LimitedStream

from app.api import bounded_json


class DeclaredLengthInput:
    """wsgi.input held to the request's Content-Length. gunicorn ends the
    stream where the client stopped sending, and werkzeug (trusting a server
    that sets wsgi.input_terminated) reads a short body as a whole one: a
    truncated JSON body that still parses would be accepted. Here a body that
    ends early is a 400, and one whose read timed out (the web worker's idle
    timeout, app/web_worker.py) a 408."""

    def __init__(self, stream, length: int) -> None:
        self._stream = stream
        self._missing = length

    def read(self, size: int | None = -1) -> bytes:
        try:
            data = self._stream.read() if size is None or size < 0 else self._stream.read(size)
        except (TimeoutError, BlockingIOError) as exc:
            raise RequestTimeout("The request body stopped arriving.") from exc
        self._missing -= len(data)
        if self._missing > 0 and (not data or size is None or size < 0):
            raise BadRequest(f"The request body ended {self._missing} bytes short of its Content-Length.")
        return data

    def readinto(self, buffer) -> int:
        # Defined here, or werkzeug would find the server stream's own and skip the checks.
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class BoundedRequest(Request):
    """A request whose body over MAX_CONTENT_LENGTH is refused (413) however
    it was sent. A body with Content-Length is checked up front; a chunked
    one is read only up to the limit and would otherwise reach the parser cut
    short, so it would be answered as malformed JSON (400). A body shorter
    than its Content-Length is refused too (DeclaredLengthInput)."""

    def __init__(self, environ, *args, **kwargs) -> None:
        length = environ.get("CONTENT_LENGTH", "")
        stream = environ.get("wsgi.input")
        if length.isdigit() and int(length) > 0 and stream is not None and not isinstance(stream, DeclaredLengthInput):
            environ["wsgi.input"] = DeclaredLengthInput(stream, int(length))
        super().__init__(environ, *args, **kwargs)

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False):
        data = super().get_data(cache, as_text, parse_form_data)  # type: ignore[call-overload]
        stream = self.stream
        if isinstance(stream, LimitedStream) and stream.is_exhausted and self.content_length is None:
            # The stream stops at the limit without a word: one more byte means the body was longer.
            if self.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
        return data

    def on_json_loading_failed(self, e: ValueError | None):
        if isinstance(e, bounded_json.TooDeep):
            raise bounded_json.as_problem(e)
        return super().on_json_loading_failed(e)
