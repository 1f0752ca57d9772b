"""The web process's gunicorn worker: gthread, except that a request has
arrived before a thread is given to it.

gthread hands a connection to a thread as soon as its first byte arrives, and
the thread then blocks on the socket until the whole request is in, with no
time limit: a client that sends headers and then nothing holds a thread for
ever, and threads × processes such clients stop the API (slowloris). Here the
worker's event loop (which holds idle connections anyway) reads each request's
head and body up to BUFFERED_BODY_BYTES without a thread, and answers 408 to a
connection that stays silent for the idle timeout (WEB_TIMEOUT). A longer
body (an upload) is read on the thread as it arrives, and there every read
of the socket times out after the same idle time, so an upload that keeps
sending is never cut short, however long it takes.

A request that comes too early — a retry by a key this process refused a
moment ago for its rate limit, a conditional poll of a job before its poll
hint — waits, still without a thread, until its time (at most a second;
app/api/held_requests.py) before a thread answers it.
"""

from __future__ import annotations

import errno
import selectors
import socket
import struct
import time
from collections.abc import Iterator
from functools import partial

from gunicorn import util
from gunicorn.workers.gthread import TConn, ThreadWorker

from app.api import held_requests

# Request bodies up to this size (every JSON submit) are in memory before a
# thread sees the request; per worker, at most worker_connections of these.
BUFFERED_BODY_BYTES = 256 * 1024
_RECV_BYTES = 64 * 1024
_HEAD_END = b"\r\n\r\n"
_TIMEOUT_BODY = (
    b'{"type": "urn:quarry:problem:request_timeout", "title": "Request Timeout", "status": 408, '
    b'"detail": "The request did not arrive in time.", "code": "request_timeout", "request_id": null}'
)
REQUEST_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/problem+json\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


def request_has_arrived(data: bytes) -> bool:
    """Whether `data` holds a request's whole head and its body (or the first
    BUFFERED_BODY_BYTES of it): enough for a thread to read without waiting."""
    head_end = data.find(_HEAD_END)
    if head_end < 0:
        return len(data) >= BUFFERED_BODY_BYTES  # gunicorn refuses a head this long itself
    length = _declared_body_length(data[:head_end])
    if length is None:
        return True  # chunked, or a length gunicorn refuses: read on the thread, under the idle timeout
    return len(data) - head_end - len(_HEAD_END) >= min(length, BUFFERED_BODY_BYTES)


def _header_fields(head: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(lower-case name, value) of each header line of a request's head."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        yield name.strip().lower(), value.strip()


def _declared_body_length(head: bytes) -> int | None:
    length = 0
    for name, value in _header_fields(head):
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            if not value.isdigit():
                return None
            length = int(value)
    return length


def held_for(data: bytes) -> float:
    """Seconds to hold back the request whose head `data` begins with
    (app/api/held_requests.py), from its request line and headers alone."""
    head = data[: data.find(_HEAD_END)]
    method, _, target = head.partition(b"\r\n")[0].partition(b" ")
    path = target.partition(b" ")[0].partition(b"?")[0]
    presented, conditional = None, False
    for name, value in _header_fields(head):
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            presented = value[7:].strip()
        elif name == b"x-api-key" and presented is None:
            presented = value
        elif name == b"if-none-match":
            conditional = True
    return held_requests.hold_seconds(presented, method, path, conditional)


def set_idle_timeout(sock: socket.socket, seconds: float) -> None:
    """Blocking reads and writes of `sock` fail (EAGAIN) after `seconds`
    without progress. Kernel options, not socket.settimeout(), because gthread
    puts every socket back in blocking mode, which clears settimeout()."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class BufferingThreadWorker(ThreadWorker):
    """gthread that gives a thread only to a request that has arrived (see the module)."""

    def init_process(self) -> None:
        self.idle_timeout = float(self.cfg.timeout or 30)
        self.arriving: dict[TConn, bytearray] = {}
        self.held: list[tuple[float, TConn]] = []  # (until, connection), requests held back
        super().init_process()

    def accept(self, listener) -> None:
        if self.cfg.is_ssl:  # TLS bytes cannot be read ahead of the handshake
            super().accept(listener)
            return
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        set_idle_timeout(client, self.idle_timeout)
        self._await_request(TConn(self.cfg, client, address, listener.getsockname()))

    def on_client_socket_readable(self, conn, client) -> None:
        """A kept-alive connection's next request starts: it arrives first too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_request(conn)

    def _await_request(self, conn: TConn) -> None:
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.idle_timeout
        self.arriving[conn] = bytearray()
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_request_bytes, conn))

    def _on_request_bytes(self, conn: TConn, _client) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        received = self.arriving[conn]
        received += data
        conn.timeout = time.monotonic() + self.idle_timeout
        if data and not request_has_arrived(bytes(received)):
            return
        self.poller.unregister(conn.sock)
        del self.arriving[conn]
        if not received:  # closed before sending anything
            self.nr_conns -= 1
            util.close(conn.sock)
            return
        # Complete, or the client is done sending (half-closed): the thread parses it.
        conn.received = bytes(received)
        hold = held_for(conn.received)
        if hold > 0:
            self.held.append((time.monotonic() + hold, conn))
            return
        self.enqueue_req(conn)

    def handle(self, conn):
        received = getattr(conn, "received", b"")
        if received:
            conn.received = b""
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(received)
        return super().handle(conn)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """Wakes no later than the first held request's time, and hands on
        the held requests whose time has come."""
        if self.held:
            timeout = max(0.0, min(timeout, min(until for until, _conn in self.held) - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)
        if self.held:
            now = time.monotonic()
            due = [conn for until, conn in self.held if until <= now]
            self.held = [(until, conn) for until, conn in self.held if until > now]
            for conn in due:
                self.enqueue_req(conn)

    def murder_pending(self) -> None:
        """Also answers 408 to, and closes, connections silent for the idle timeout mid-request."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [conn for conn in self.arriving if conn.timeout <= now]:
            started = bool(self.arriving.pop(conn))
            self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            if started:
                try:
                    conn.sock.send(REQUEST_TIMEOUT_ANSWER)
                except OSError:
                    pass
            util.close(conn.sock)
