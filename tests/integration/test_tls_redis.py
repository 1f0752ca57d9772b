"""Heroku Redis speaks TLS (`rediss://`) with a self-signed certificate: with
REDIS_SSL_CERT_REQS=none every Redis client of the service connects to such
a server — the web's (health, rate limits), the broker, and Flower's."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis
import requests

from devstack.processes import Stack, create_database, free_port, wait_until
from tests.integration.brokers import redis_broker_only
from tests.integration.corpora import unique

pytestmark = pytest.mark.integration


class TlsRedisServer:
    """A private redis-server that accepts TLS connections only."""

    def __init__(self, directory) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"rediss://127.0.0.1:{self.port}/0"
        cert, key = directory / "cert.pem", directory / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(cert),
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=(directory / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, 10, what="redis-server over TLS")

    def _answers(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, ssl_cert_reqs="none", socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def tls_stack(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate with")
    server = TlsRedisServer(tmp_path / "redis")
    url, drop = create_database(tmp_path)
    stack = Stack(tmp_path, url, server, REDIS_SSL_CERT_REQS="none")
    try:
        yield stack
    finally:
        stack.stop()
        server.stop()
        drop()


@redis_broker_only
def test_every_redis_client_connects_to_a_tls_redis_with_a_self_signed_certificate(tls_stack):
    stack = tls_stack
    assert stack.env["REDIS_URL"].startswith("rediss://")
    stack.authenticate(stack.create_key("tls", tier="enterprise"))
    stack.start_web()
    stack.start_worker()
    components = stack.get("/health").json()["components"]
    assert components["redis"]["status"] == components["rate_limiter"]["status"] == "up", components
    assert components["workers"]["count"] == 1, components  # seen through the broker

    name = unique("tls")
    assert stack.post("/api/v1/collections", json={"name": name}).status_code == 201
    job = stack.ingest(name, [{"id": "lantern", "text": "A storm lantern shields its flame from the wind."}])
    assert job["status"] == "succeeded", job
    hits = stack.search(name, query="flame sheltered from wind", top_k=1)["result"]["hits"]
    assert hits[0]["document_id"] == "lantern"

    # Flower reads queue lengths from the broker with a client of its own.
    flower = stack.start_flower(FLOWER_BASIC_AUTH="ops:s3cret")
    lengths = requests.get(flower + "/api/queues/length", auth=("ops", "s3cret"), timeout=10)
    assert lengths.status_code == 200, lengths.text
    assert {queue["name"] for queue in lengths.json()["active_queues"]} >= {"search", "ingest"}
