"""`make cluster`: the multi-host topology of devstack/cluster.py for a
person to try. It prints the web and Flower addresses and an admin key;
Ctrl-C (or SIGTERM) stops every process and removes the namespaces."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from pathlib import Path

from devstack.cluster import FLOWER_AUTH, Cluster, NamespacesUnavailable


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="quarry-cluster-"))
    try:
        cluster = Cluster(workdir, remove_workdir=True)
    except NamespacesUnavailable as exc:
        print(f"Cannot build the cluster: {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        return 1

    def interrupted(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    # Ctrl-C ends it even when started with SIGINT ignored (in the background, say).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(f"Building the cluster in {workdir} (hosts' logs and var/ there) ...", flush=True)
        cluster.start()
        key = cluster.create_key("cluster")
        print(f"Started in {cluster.timings['workers']} s ({cluster.timings})")
        print(f"Web host:   {cluster.web_url}  (also {cluster.base_url} on this machine's loopback)")
        print(f"Admin key:  {key}")
        print(f"Flower:     {cluster.flower_url}  (user {FLOWER_AUTH[0]}, password {FLOWER_AUTH[1]})")
        for role, host in cluster.hosts.items():
            print(f"  {role:8} {host.address:15} ip netns exec {host.namespace} ...")
        print(f"Try: curl -H 'Authorization: Bearer {key}' {cluster.web_url}/health")
        print("Ctrl-C stops it and removes everything.", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("\nStopping the cluster ...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown short
        cluster.stop(graceful=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
