"""A RabbitMQ virtual host of a stack's own, on the machine's RabbitMQ: its
queues are no other stack's, and deleting it removes them all. Made with
`rabbitmqctl`, as the test suite runs on the server's machine."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit


def answers(url: str) -> bool:
    """The server of `url` accepts connections and rabbitmqctl is here to make vhosts."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 1).close()
    except OSError:
        return False
    return shutil.which("rabbitmqctl") is not None


class VirtualHost:
    """`url`: the server's URL with this vhost in its path. It is deleted by
    delete(), or when this process exits (a stack may be stopped and started
    again, so stopping it does not delete its broker)."""

    def __init__(self, server_url: str, prefix: str = "quarry-test") -> None:
        parts = urlsplit(server_url)
        self.name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, parts.username or "guest", ".*", ".*", ".*")
        self.url = urlunsplit((parts.scheme, parts.netloc, f"/{self.name}", "", ""))
        atexit.register(self.delete)

    def delete(self) -> None:
        if self.name:
            self._ctl("delete_vhost", self.name, check=False)
            self.name = ""

    @staticmethod
    def _ctl(*args: str, check: bool = True) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=check, timeout=60, capture_output=True)
