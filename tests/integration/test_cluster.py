"""Quarry on several hosts that share no disk: network namespaces on this
machine (devstack/cluster.py) — a data host (PostgreSQL, Redis), a web
host, two worker hosts with an INDEX_DIR each, and a beat host.

The topology is built once for the module. worker1 takes the ingest queue
and worker2 the search queue (Celery's add/cancel_consumer), so that what
one host writes is read by the other; each test checks in the hosts' own
logs which one ran its jobs. The test that kills a host runs last."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from devstack.client import Client
from devstack.cluster import FLOWER_AUTH, FLOWER_PORT, POSTGRES_PORT, REDIS_PORT, WEB_PORT
from devstack.processes import PROJECT_ROOT
from devstack.receiver import Receiver
from devstack.waiting import wait_until
from tests.integration.corpora import large_corpus, unique
from tests.webhook_calls import subscribe

pytestmark = pytest.mark.integration

LEASE_SECONDS, SWEEP_SECONDS = 4, 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from devstack.cluster import Cluster, NamespacesUnavailable

    try:
        cluster = Cluster(
            tmp_path_factory.mktemp("cluster"),
            JOB_LEASE_SECONDS=str(LEASE_SECONDS),
            RECOVERY_INTERVAL_SECONDS=str(SWEEP_SECONDS),
            # The webhook receiver is this machine, at the bridge's address.
            WEBHOOK_ALLOW_PRIVATE_NETWORKS="1",
        )
        cluster.start()
    except NamespacesUnavailable as exc:
        pytest.skip(f"no network namespaces here: {exc}")
    try:
        cluster.authenticate(cluster.create_key("cluster"))
        cluster.consume("worker1", "search", on=False)
        cluster.consume("worker2", "ingest", on=False)
        yield cluster
    finally:
        cluster.stop()


def ran_on(cluster, job_id: str) -> list[str]:
    """The worker hosts whose worker logged the job."""
    return [host.role for host in cluster.workers.values() if job_id in host.log("worker.log")]


def collection_id(cluster, name: str) -> str:
    [(found,)] = cluster.sql("SELECT id FROM collections WHERE name = :name", name=name)
    return found


def files_under(folder) -> list:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def test_an_upload_staged_on_the_web_host_is_ingested_on_one_worker_host_and_found_on_the_other(cluster):
    name = unique("hosts")
    assert cluster.post("/api/v1/collections", json={"name": name}).status_code == 201
    kayaks = b"# Kayaks\nA sea kayak has a skeg or rudder to hold its course in crosswinds."
    response = cluster.post(
        f"/api/v1/collections/{name}/documents", files=[("files", ("kayaks.md", kayaks, "text/markdown"))]
    )
    assert response.status_code == 202, response.text
    ingest = cluster.wait_job(response.json()["id"], timeout=180)
    assert ingest["status"] == "succeeded" and ingest["result"]["documents"] == 1, ingest
    assert ran_on(cluster, ingest["id"]) == ["worker1"]
    # The upload went through the database, not a disk: none is left on the web host.
    assert files_under(cluster.hosts["web"].var_dir / "uploads") == []
    # worker1 wrote the collection's index; worker2 has no file of it.
    key = collection_id(cluster, name)
    assert files_under(cluster.hosts["worker1"].var_dir / "indexes" / key)
    assert files_under(cluster.hosts["worker2"].var_dir / "indexes" / key) == []

    search = cluster.search(name, query="rudder in crosswinds", pipeline="dense", top_k=1)
    assert search["status"] == "succeeded", search
    assert [hit["document_id"] for hit in search["result"]["hits"]] == ["kayaks.md"]
    assert ran_on(cluster, search["id"]) == ["worker2"]


def test_a_document_deleted_on_one_worker_host_is_gone_from_the_other_hosts_search(cluster):
    name = unique("delete")
    documents = [
        {"id": "bees", "text": "Honey bees collect nectar from flowers and turn it into honey in the hive."},
        {"id": "tides", "text": "Ocean tides rise and fall because of the gravitational pull of the moon."},
    ]
    assert cluster.ingest(name, documents)["status"] == "succeeded"
    # worker2 loads this generation first, so the deletion must move it on.
    before = cluster.search(name, query="honey made from nectar", pipeline="dense", top_k=2)
    assert [hit["document_id"] for hit in before["result"]["hits"]][0] == "bees"

    response = cluster.delete(f"/api/v1/collections/{name}/documents/bees")
    assert response.status_code == 202, response.text
    deleted = cluster.wait_job(response.json()["id"], timeout=60)
    assert deleted["status"] == "succeeded" and deleted["result"]["deleted"] is True, deleted
    assert ran_on(cluster, deleted["id"]) == ["worker1"]

    after = cluster.search(name, query="bees and their hive", pipeline="dense", top_k=2)
    assert [hit["document_id"] for hit in after["result"]["hits"]] == ["tides"]
    assert ran_on(cluster, before["id"]) == ran_on(cluster, after["id"]) == ["worker2"]


def test_health_on_the_web_host_counts_both_worker_hosts(cluster):
    workers = cluster.get("/health").json()["components"]["workers"]
    assert workers["status"] == "up" and workers["count"] == 2
    assert workers["names"] == sorted(cluster.workers)


def test_flower_on_the_beat_host_sees_both_worker_hosts(cluster):
    def both_workers():
        try:
            answer = requests.get(
                cluster.local_flower_url + "/api/workers", params={"refresh": "1"}, auth=FLOWER_AUTH, timeout=10
            )
        except requests.RequestException:
            return None  # Flower still starting
        return answer.json() if answer.status_code == 200 and set(answer.json()) == set(cluster.workers) else None

    assert requests.get(cluster.local_flower_url + "/api/workers", timeout=10).status_code == 401
    wait_until(both_workers, 60, what="Flower to see both worker hosts")


# What each host listens on, in its own namespace (its own loopback included).
LISTENERS = {
    "data": {REDIS_PORT, POSTGRES_PORT},
    "web": {WEB_PORT},
    "beat": {FLOWER_PORT},
    "worker1": set(),
    "worker2": set(),
}


def test_each_host_listens_on_its_own_ports_and_holds_files_of_its_own_directory_only(cluster):
    """Nothing falls back to a path or server of another host (or of this
    checkout's var/, where `make run` keeps its Redis port file, admin key
    and indexes): every file a host's processes have open is its own or the
    project's code and packages, and only the servers of its role listen."""
    name = unique("own")
    moss = [{"id": "moss", "text": "Moss grows on the north side of trees."}]
    assert cluster.ingest(name, moss)["status"] == "succeeded"
    assert cluster.search(name, query="which side does moss grow on")["status"] == "succeeded"
    project_var = PROJECT_ROOT / "var"
    for role, host in cluster.hosts.items():
        assert listening_ports(host) == LISTENERS[role], role
        others = [other.directory for other in cluster.hosts.values() if other is not host]
        for path in open_files(host):
            assert not any(path.is_relative_to(directory) for directory in others), (role, path)
            assert not path.is_relative_to(project_var), (role, path)


def listening_ports(host) -> set[int]:
    """TCP ports listening in the host's namespace (its processes' view of /proc/net)."""
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{host.pids()[0]}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def open_files(host) -> list[Path]:
    paths = []
    for pid in host.pids():
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except FileNotFoundError:
            continue  # exited meanwhile
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except FileNotFoundError:
                continue
            if target.startswith("/"):
                paths.append(Path(target))
    return paths


def test_each_worker_hosts_jobs_are_delivered_to_a_webhook_once(cluster):
    bridge = str(cluster.subnet.network_address + 1)
    receiver = Receiver(host=bridge).start()
    try:
        tenant = Client(cluster.base_url, cluster.create_key(unique("hooks")))
        subscribe(tenant, receiver.url(), ["job.succeeded"])
        name = unique("hooked")
        ingest = tenant.ingest(name, [{"id": "owls", "text": "Owls hunt mice at night with silent wings."}])
        search = tenant.search(name, query="silent night hunters", pipeline="dense", top_k=1)
        assert (ran_on(cluster, ingest["id"]), ran_on(cluster, search["id"])) == (["worker1"], ["worker2"])
        receiver.wait_for(2, timeout=60)
        time.sleep(2)  # a duplicate would arrive about now
        events = receiver.events()
        assert sorted(e["data"]["job"]["id"] for e in events) == sorted([ingest["id"], search["id"]])
        assert len({r.headers["webhook-id"] for r in receiver.received}) == len(receiver.received) == 2
    finally:
        receiver.stop()


def test_a_worker_host_killed_mid_ingest_loses_and_duplicates_nothing(cluster):
    """Last: worker1 stays dead. The other host takes the job over once its
    lease has run out and the sweep has re-sent it."""
    name = unique("crash")
    documents = large_corpus(96)  # checkpoints of 16: killed after the first or second
    response = cluster.post(f"/api/v1/collections/{name}/documents", json={"documents": documents})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    def mid_way():
        job = cluster.get(f"/api/v1/jobs/{job_id}").json()
        return job if 0 < job["progress"]["processed"] < 48 else None

    wait_until(mid_way, 120, interval=0.05, what="ingest progress")
    cluster.consume("worker2", "ingest", on=True)
    _name, doomed = cluster.worker_host("worker1")
    killed_at = time.monotonic()
    doomed.kill(signal.SIGKILL)  # every process of the host: worker, pool child
    assert doomed.pids() == []
    stalled = cluster.get(f"/api/v1/jobs/{job_id}").json()
    assert stalled["status"] == "running" and stalled["attempts"] == 1, stalled
    assert stalled["progress"]["processed"] < stalled["progress"]["total"] == 96

    wait_until(
        lambda: cluster.get(f"/api/v1/jobs/{job_id}").json()["attempts"] == 2, 60, interval=0.2, what="a second attempt"
    )
    taken_over = time.monotonic() - killed_at
    job = cluster.wait_job(job_id, timeout=180)
    finished = time.monotonic() - killed_at
    print(f"\nworker host killed: taken over after {taken_over:.1f} s, finished after {finished:.1f} s")
    assert taken_over < LEASE_SECONDS + SWEEP_SECONDS + 5, taken_over
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert (job["result"]["documents"], job["result"]["chunks"], job["result"]["skipped_duplicates"]) == (96, 96, 0)
    assert "worker2" in ran_on(cluster, job_id)

    # Nothing lost or doubled, in SQL and in worker2's index.
    key = collection_id(cluster, name)
    [(document_rows, distinct_ids)] = cluster.sql(
        "SELECT count(*), count(DISTINCT external_id) FROM documents WHERE collection_id = :key", key=key
    )
    [(chunk_rows,)] = cluster.sql("SELECT count(*) FROM chunks WHERE collection_id = :key", key=key)
    assert (document_rows, distinct_ids, chunk_rows) == (96, 96, 96)
    hits = cluster.search(name, query=documents[42]["text"], pipeline="dense", top_k=20)["result"]["hits"]
    assert hits[0]["document_id"] == "doc-42"
    assert len({hit["chunk_id"] for hit in hits}) == len(hits) == 20

    workers = cluster.get("/health").json()["components"]["workers"]
    assert workers["count"] == 1 and workers["names"] == [cluster.worker_host("worker2")[0]]
