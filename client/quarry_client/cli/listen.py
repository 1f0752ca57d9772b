"""`quarry listen`: a temporary webhook endpoint pointing at this machine,
for building a receiver. Each delivery's signature is checked, then the
event is printed or forwarded (with its headers) to the developer's URL; the
endpoint is deleted when the command ends."""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from rich.markup import escape

from quarry_client import webhooks
from quarry_client.cli import output
from quarry_client.clients import Quarry
from quarry_client.errors import ValidationError

# Hop-by-hop headers, and those httpx sets for the forwarded request itself;
# every other header is passed on as it came.
_NOT_FORWARDED = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding"}
)


class Listener:
    def __init__(self, secret: str, forward_to: str | None, as_json: bool) -> None:
        self.secret = secret
        self.forward_to = forward_to
        self.as_json = as_json
        self._lock = threading.Lock()

    def receive(self, headers: dict[str, str], body: bytes) -> int:
        """The status to answer the service with: the receiver's when
        forwarding (so its failures are retried as they would be), else 204."""
        try:
            event = webhooks.verify(self.secret, headers, body)
        except webhooks.WebhookVerificationError as exc:
            self._show({"verified": False, "error": str(exc), "webhook-id": headers.get("webhook-id")})
            return 400
        status = self._forward(headers, body) if self.forward_to else 204
        self._show({"verified": True, "event": event, "forwarded_status": status if self.forward_to else None})
        return status

    def _forward(self, headers: dict[str, str], body: bytes) -> int:
        passed = {name: value for name, value in headers.items() if name not in _NOT_FORWARDED}
        try:
            return httpx.post(self.forward_to or "", content=body, headers=passed, timeout=15).status_code
        except httpx.HTTPError as exc:
            output.note(f"[red]could not forward to {escape(self.forward_to or '')}:[/red] {escape(str(exc))}")
            return 502

    def _show(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self.as_json:
                print(json.dumps(record), flush=True)
                return
            stamp = datetime.now().strftime("%H:%M:%S")
            if not record["verified"]:
                output.out.print(
                    f"{stamp}  [red]rejected[/red] {escape(str(record['webhook-id']))}: {escape(record['error'])}"
                )
                return
            event = record["event"]
            job = (event.get("data") or {}).get("job") or {}
            about = f" job {job.get('id')} ({job.get('type')}, {job.get('status')})" if job else ""
            sent = f"  → {record['forwarded_status']}" if record["forwarded_status"] is not None else ""
            output.out.print(
                f"{stamp}  [green]{escape(str(event.get('type')))}[/green] {escape(str(event.get('id')))} verified{escape(about)}{sent}"
            )


class _Server(ThreadingHTTPServer):
    # Set once the endpoint exists (its secret verifies the deliveries).
    listener: Listener | None = None


class _Receive(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        listener = self.server.listener
        status = listener.receive({k.lower(): v for k, v in self.headers.items()}, body) if listener else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the listener shows each delivery instead


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def listen(
    client: Quarry,
    *,
    host: str,
    port: int,
    public_url: str | None,
    events: list[str],
    forward_to: str | None,
    as_json: bool,
) -> None:
    """Serve until Ctrl-C or SIGTERM; the endpoint is deleted either way."""
    server = _Server((host, port), _Receive)
    url = public_url or f"http://{host}:{server.server_address[1]}/"
    try:
        endpoint = client.webhooks.create(url, events, description="quarry listen (temporary)")
    except ValidationError as exc:
        server.server_close()
        exc.detail += (
            " The service refuses webhooks to private addresses unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=1 "
            "(make run sets it when it listens on loopback); or pass --public-url (a tunnel to this port)."
        )
        raise
    server.listener = Listener(endpoint.secret or "", forward_to, as_json)
    previous = signal.signal(signal.SIGTERM, _stop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        output.note(
            f"Listening for {', '.join(events)} on {url} (endpoint {endpoint.id}); Ctrl-C stops and deletes it."
        )
        client.webhooks.test(endpoint.id)  # a ping shows the whole path works
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()
        client.webhooks.delete(endpoint.id)
        output.note(f"Deleted the endpoint {endpoint.id}.")
