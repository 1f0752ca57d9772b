"""A real webhook receiver on 127.0.0.1: it records every request and
answers as the test scripts it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devstack.processes import free_port, wait_until


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(
        self, statuses: list[int] | None = None, delay: float = 0.0, pump=None, host: str = "127.0.0.1"
    ) -> None:
        # `host`: the address to listen on (another network namespace's
        # hosts reach this one at its bridge address, not loopback).
        self.host = host
        self.port = free_port()
        # Called while waiting: the in-process tier's inline worker sends the
        # deliveries from there (tests/api); real workers need nothing.
        self.pump = pump
        self.statuses = list(statuses or [])  # answered in order, then 200
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(dict(self.headers), body, time.time()))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        def arrived() -> bool:
            if self.pump is not None:
                self.pump()
            return len(self.received) >= count

        wait_until(arrived, timeout, what=f"{count} webhook requests")
        return list(self.received)

    def events(self) -> list[dict]:
        return [r.event for r in self.received]
