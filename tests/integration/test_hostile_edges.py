"""What a hostile client reaches over a real socket: stalled and truncated
bodies, over-long request lines and headers, and what /metrics tells
strangers. Each runs against a real gunicorn web process."""

from __future__ import annotations

import json
import socket
import time
from contextlib import ExitStack

import pytest

from tests.integration.corpora import unique
from tests.integration.problems import assert_problem

pytestmark = pytest.mark.integration

# Kept small so that a stalled connection's fate is known within seconds.
WEB_TIMEOUT = 3
STALLED_CONNECTIONS = 50


def _raw_request(stack, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{stack.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _search_headers(stack, content_length: int) -> dict[str, str]:
    return {
        "Authorization": stack.http.headers["Authorization"],
        "Content-Type": "application/json",
        "Content-Length": str(content_length),
    }


def _read_answer(sock: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing (b"" when it closed without a
    word), or None when it still held the connection open at `deadline`."""
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            block = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return received
        if not block:
            return received
        received += block
    return None


def _open_stalled(stack, path: str) -> socket.socket:
    """A connection that sent a search's headers, promised 100 bytes of body, and sends nothing more."""
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=5)
    sock.sendall(_raw_request(stack, path, _search_headers(stack, 100)))
    return sock


def test_stalled_bodies_neither_stop_other_clients_nor_stay_open(new_stack):
    stack = new_stack(WEB_TIMEOUT=str(WEB_TIMEOUT)).start_web(processes=2, threads=4)
    name = unique("slowloris")
    assert stack.post("/api/v1/collections", json={"name": name}).status_code == 201
    path = f"/api/v1/collections/{name}/search"
    with ExitStack() as closing:
        stalled = [closing.enter_context(_open_stalled(stack, path)) for _ in range(STALLED_CONNECTIONS)]
        last_byte = time.monotonic()
        took = []
        for attempt in range(10):
            started = time.monotonic()
            response = stack.http.post(stack.url(path), json={"query": f"still answered {attempt}"}, timeout=5)
            took.append(time.monotonic() - started)
            assert response.status_code == 202, response.text
        print(f"searches beside {STALLED_CONNECTIONS} stalled connections: slowest {max(took) * 1000:.0f} ms")
        # Every stalled connection is closed (or answered 408) within WEB_TIMEOUT of its last byte.
        deadline = last_byte + WEB_TIMEOUT + 2
        answers = [_read_answer(sock, deadline) for sock in stalled]
    still_open = sum(answer is None for answer in answers)
    assert still_open == 0, f"{still_open} of {STALLED_CONNECTIONS} stalled connections still open"
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 408") for answer in answers), {a[:40] for a in answers}


def _send_upload(stack, path: str, declared: int, pieces: list[bytes], pause: float) -> bytes | None:
    """Sends a JSON upload's headers and `pieces` of its body, `pause` apart; the server's answer."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(_raw_request(stack, path, _search_headers(stack, declared)))
        for piece in pieces:
            time.sleep(pause)
            sock.sendall(piece)
        return _read_answer(sock, time.monotonic() + WEB_TIMEOUT + 8)


@pytest.fixture(scope="module")
def stack(module_stack):
    """One web process for the tests below that need no settings of their
    own: each uses collections of its own, and leaves no connection open
    longer than WEB_TIMEOUT."""
    return module_stack(WEB_TIMEOUT=str(WEB_TIMEOUT)).start_web()


def test_a_large_body_that_keeps_arriving_is_not_cut_short_and_one_that_stalls_is_408(stack):
    path = f"/api/v1/collections/{unique('slowupload')}/documents"
    body = json.dumps({"documents": [{"text": "steady " * 100_000}]}).encode()  # 700 KB: read on a thread
    pieces = [body[i : i + len(body) // 8] for i in range(0, len(body), len(body) // 8)]
    # Slower in total than WEB_TIMEOUT, never idle for as long.
    answer = _send_upload(stack, path, len(body), pieces, pause=WEB_TIMEOUT / 4)
    assert answer and answer.startswith(b"HTTP/1.1 202"), (answer or b"")[:200]
    started = time.monotonic()
    answer = _send_upload(stack, path, len(body), pieces[:4], pause=0)  # past the buffered part: on a thread
    assert answer is not None and time.monotonic() - started < WEB_TIMEOUT + 7
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_body_shorter_than_its_content_length_is_400_and_no_job(stack):
    name = unique("truncated")
    assert stack.post("/api/v1/collections", json={"name": name}).status_code == 201
    body = b'{"query": "hello there"}'
    path = f"/api/v1/collections/{name}/search"
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(_raw_request(stack, path, _search_headers(stack, 100), body))
        sock.shutdown(socket.SHUT_WR)  # the client is done: 25 of the 100 bytes it promised
        answer = _read_answer(sock, time.monotonic() + WEB_TIMEOUT + 5)
    assert answer, "no answer"
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 400"), answer[:200]
    assert b"content-type: application/problem+json" in head
    jobs = stack.get("/api/v1/jobs", params={"collection": name}).json()
    assert jobs["items"] == []


@pytest.mark.parametrize("parameter", ["cursor", "collection"])
def test_a_query_parameter_of_a_few_kilobytes_is_422_naming_it(stack, parameter):
    response = stack.get("/api/v1/jobs", params={parameter: "a" * 6000})
    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [parameter]


def test_an_idempotency_key_of_ten_kilobytes_is_422_naming_it(stack):
    name = unique("longkey")
    assert stack.post("/api/v1/collections", json={"name": name}).status_code == 201
    path = f"/api/v1/collections/{name}/search"
    for key in ("k" * 256, "k" * 10 * 1024):
        response = stack.post(path, json={"query": "x"}, headers={"Idempotency-Key": key})
        problem = assert_problem(response, 422, "validation_error")
        assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert stack.get("/api/v1/jobs", params={"collection": name}).json()["items"] == []


def test_an_x_request_id_of_ten_kilobytes_is_replaced(stack):
    response = stack.get("/api/v1/jobs", headers={"X-Request-ID": "r" * 10 * 1024})
    assert response.status_code == 200, response.text
    assert 0 < len(response.headers["X-Request-ID"]) <= 128


def _index_series(stack, **headers: str) -> list[str]:
    response = stack.http.get(stack.url("/metrics"), headers=headers, timeout=30)
    assert response.status_code == 200
    return [line for line in response.text.splitlines() if line.startswith("quarry_index_vectors")]


def test_metrics_without_a_token_name_no_collection_or_tenant(stack):
    name = unique("alpha-secret")
    assert stack.post("/api/v1/collections", json={"name": name}).status_code == 201
    series = _index_series(stack)
    assert series, "the total is still reported"
    assert not any(name in line or "tenant=" in line or "collection=" in line for line in series), series


def test_metrics_behind_a_token_name_each_collection(new_stack):
    stack = new_stack(METRICS_TOKEN="s3cret").start_web()
    name = unique("alpha-secret")
    assert stack.post("/api/v1/collections", json={"name": name}).status_code == 201
    assert stack.http.get(stack.url("/metrics"), timeout=30).status_code == 401
    series = _index_series(stack, Authorization="Bearer s3cret")
    assert any(f'collection="{name}"' in line and "tenant=" in line for line in series), series
