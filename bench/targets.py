"""Issue 10's targets: each figure for the in-process limit, the peer
(txtai's API) and Quarry, all measured in the same run, and whether Quarry
meets its target; and the report's sections that show them (the Targets
table, the peer's table), which bench/report.py puts in docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass

from bench.client import server_chunks_per_s
from bench.formatting import fmt
from bench.parameters import (
    TARGET_CONCURRENT_P50_MS,
    TARGET_CONCURRENT_X_LIMIT,
    TARGET_DURING_INGEST_X_IDLE,
    TARGET_INGEST_X_LIMIT,
    TARGET_MEMORY_X_BEFORE,
    TARGET_SEARCH_X_LIMIT,
    TARGET_SUBMIT_P95_MS,
)


@dataclass
class Target:
    figure: str
    limit: float | None  # None: the figure has no in-process limit
    peer: float | None  # None: the peer was not measured
    quarry: float | None
    target: str  # as the report states it
    met: bool | None  # None when Quarry's figure is missing
    digits: int = 1  # how the report writes the figures

    @property
    def ratio(self) -> float | None:
        """Quarry's figure as a multiple of the limit."""
        return _ratio(self.quarry, self.limit)

    @property
    def peer_ratio(self) -> float | None:
        return _ratio(self.peer, self.limit)


def targets(results: dict) -> list[Target]:
    """Every target of issue 10 this run measured (older results lack the later rows)."""
    return [*_search_targets(results), *_ingest_targets(results), *_load_and_memory_targets(results)]


def _search_targets(results: dict) -> list[Target]:
    svc, base = results["service"], results["baseline"]
    peer = results.get("peer") or {}
    measured = ran(peer)
    sq, cc = svc["sequential"], svc["concurrent"]
    clients = cc["clients"]
    # Older results (before issue 10) have no created -> finished phase.
    created_to_finished = sq["phases"].get("created_to_finished", {}).get("p50")
    search_limit, qps_limit = base["sequential"]["latency"]["p50"], base["batched_qps"]
    concurrent_p50 = cc["latency"].get("p50")
    return [
        Target(
            "One search, created → finished, p50 (ms)",
            search_limit,
            peer["sequential"]["latency"].get("p50") if measured else None,
            created_to_finished,
            f"≤ {TARGET_SEARCH_X_LIMIT:g}× limit",
            _at_most(created_to_finished, TARGET_SEARCH_X_LIMIT * search_limit),
        ),
        Target(
            f"{clients} concurrent clients, searches/s",
            qps_limit,
            peer["concurrent"]["qps"] if measured else None,
            cc["qps"],
            f"≥ {TARGET_CONCURRENT_X_LIMIT:g}× limit",
            cc["qps"] >= TARGET_CONCURRENT_X_LIMIT * qps_limit,
        ),
        Target(
            f"{clients} clients, client-observed p50 (ms)",
            None,
            peer["concurrent"]["latency"].get("p50") if measured else None,
            concurrent_p50,
            f"≤ {TARGET_CONCURRENT_P50_MS:g} ms",
            _at_most(concurrent_p50, TARGET_CONCURRENT_P50_MS),
        ),
    ]


def _ingest_targets(results: dict) -> list[Target]:
    svc, base = results["service"], results["baseline"]
    ingest, during = svc["ingest"], svc.get("search_during_ingest")
    rows = []
    if ingest["requests"] == 1:
        chunks_per_s, limit = server_chunks_per_s(ingest), base["ingest"]["embed_chunks_per_s"]
        rows.append(
            Target(
                f"Ingest of one {ingest['documents']:,}-document job, chunks/s",
                limit,
                None,
                chunks_per_s,
                f"≥ {TARGET_INGEST_X_LIMIT:g}× limit",
                chunks_per_s >= TARGET_INGEST_X_LIMIT * limit,
            )
        )
    if during:
        slower = _ratio(during["during"]["latency"].get("p50"), during["idle"]["latency"].get("p50"))
        rows.append(
            Target(
                "A search during that ingest, client p50 ÷ the same on the idle service (×)",
                None,
                None,
                slower,
                f"≤ {TARGET_DURING_INGEST_X_IDLE:g}×",
                _at_most(slower, TARGET_DURING_INGEST_X_IDLE),
                digits=2,
            )
        )
    return rows


def _load_and_memory_targets(results: dict) -> list[Target]:
    load, memory = results["service"].get("load"), results.get("memory")
    rows = []
    if ran(load):
        submit_p95 = (load["submit"] or {}).get("p95")
        rows += [
            Target(
                f"Search submit `POST` → 202, p95 at {load['users']} users (ms)",
                None,
                None,
                submit_p95,
                f"≤ {TARGET_SUBMIT_P95_MS:g} ms",
                _at_most(submit_p95, TARGET_SUBMIT_P95_MS),
            ),
            Target(
                f"Load test errors ({load['users']} users, {load['seconds']} s)",
                None,
                None,
                load["errors"],
                "0",
                load["errors"] == 0,
                digits=0,
            ),
        ]
    if ran(memory):
        shrink = memory["1"]["pss"] / memory["0"]["pss"]
        rows.append(
            Target(
                "Worker total PSS, default concurrency, ÷ a model per pool process (×)",
                None,
                None,
                shrink,
                f"≤ {TARGET_MEMORY_X_BEFORE:g}×",
                shrink <= TARGET_MEMORY_X_BEFORE,
                digits=2,
            )
        )
    return rows


def targets_section(results: dict) -> list[str]:
    """Issue 10's targets: limit, peer and Quarry side by side, from this run."""
    base, cfg, peer = results["baseline"], results["config"], results.get("peer") or {}
    clients = results["service"]["concurrent"]["clients"]

    measured = ran(peer)

    def times(ratio: float | None) -> str:
        return "–" if ratio is None else f"{ratio:.2f}×"

    def peer_cell(t: Target) -> str:
        if t.peer_ratio:
            return f"{fmt(t.peer)} ({times(t.peer_ratio)})"
        return fmt(t.peer) if t.peer is not None else "–" if measured else "n/a"

    rows = [
        f"| {t.figure} | {fmt(t.limit) if t.limit else '–'} | "
        + peer_cell(t)
        + f" | {fmt(t.quarry, t.digits)} | {times(t.ratio)} | {t.target} | "
        + {True: "yes", False: "**no**", None: "n/a"}[t.met] + " |"
        for t in targets(results)
    ]
    return [
        "## Targets",
        "",
        "| Figure | Limit (in process) | Peer: txtai (× limit) | Quarry | Quarry / limit | Target | Met? |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Limits, from the baseline process: one query encoded and searched at a time, p50 (torch threads = "
        f"{base['torch_threads']}), and all {cfg['queries']} queries encoded in one batch and searched in one FAISS "
        f"call. Quarry: the search job row's `created_at` → `finished_at` (queue + run) in the sequential phase, and "
        f"the service run's concurrent phase ({clients} closed-loop clients, `CLIENT_THREADS`, each query once; "
        f"the same phase as in the tables below). txtai: `GET /search` as its client sees it (it has no job, so "
        f"the whole request), with as many clients. "
        + ("See \"The peer\" below for how it ran." if measured
           else f"**The peer was not measured**: {peer.get('skipped', 'not part of this run')}."),
        "",
        "The ingest's limit is the baseline's encode of the same chunks in one call; Quarry's figure is the one "
        "job's chunks over its `created_at` → `finished_at`. " + _sections_sentence(results),
        "",
    ]


def _sections_sentence(results: dict) -> str:
    """Which of the other figures this run measured, each in its own section below."""
    measured = [
        name
        for name, present in (
            ("the searches during the ingest", bool(results["service"].get("search_during_ingest"))),
            ("the load test", ran(results["service"].get("load"))),
            ("the worker's memory", ran(results.get("memory"))),
        )
        if present
    ]
    if not measured:
        return ""
    names = measured[0] if len(measured) == 1 else ", ".join(measured[:-1]) + " and " + measured[-1]
    return f"Measured in this same run, each in its own section below: {names}."


def ran(phase: dict | None) -> bool:
    """A phase that ran (its results are there and it was not skipped)."""
    return bool(phase) and "skipped" not in phase


def peer_section(results: dict) -> list[str]:
    peer = results.get("peer") or {}
    if not ran(peer):
        return []
    svc, ing, quality = results["service"], peer["ingest"], results["quality"]
    sq, cc, psq, pcc = svc["sequential"], svc["concurrent"], peer["sequential"], peer["concurrent"]

    def latency(summary: dict) -> str:
        return " / ".join(fmt(summary["latency"].get(k)) for k in ("p50", "p95", "p99"))

    return [
        "### The peer: txtai's API, same machine, model and data",
        "",
        "| | txtai API | Quarry (service) |",
        "|---|---|---|",
        f"| Ingest: documents/s | {fmt(ing['docs_per_s'])} | {fmt(svc['ingest']['docs_per_s'])} |",
        f"| Search latency, sequential, p50 / p95 / p99 (ms) | {latency(psq)} | {latency(sq)} |",
        f"| Throughput, one client (searches/s) | {fmt(psq['qps'], 2)} | {fmt(sq['qps'], 2)} |",
        f"| Throughput, {pcc['clients']} clients (searches/s) | {fmt(pcc['qps'], 2)} | {fmt(cc['qps'], 2)} |",
        f"| Latency with {pcc['clients']} clients, p50 / p95 / p99 (ms) | {latency(pcc)} | {latency(cc)} |",
        f"| nDCG@10 / Recall@10 | {quality['peer']['ndcg@10']:.4f} / {quality['peer']['recall@10']:.4f} | "
        f"{quality['service']['ndcg@10']:.4f} / {quality['service']['recall@10']:.4f} |",
        f"| Peak RSS (MB) | {fmt(peer['memory']['sum_hwm_mb'], 0)} | "
        f"worker {fmt(svc['memory']['worker']['sum_hwm_mb'], 0)} + web {fmt(svc['memory']['web']['sum_hwm_mb'], 0)} |",
        "",
        f"txtai {peer['txtai_version']} in a venv of its own (`var/peer-txtai/`, the same CPU torch), run after the "
        "baseline as `uvicorn txtai.api:app` (one process, txtai's defaults; its access log on, as Quarry logs "
        "every request) with `embeddings: {path: <the bundled model directory>, content: true}`, `writable: true` "
        "and no index `path`, so its index stays in memory and is never saved. It embeds each document whole "
        "(txtai does not chunk; mean pooling, truncated at the tokenizer's "
        "`model_max_length`, 512, where sentence-transformers stops at the model's 256) where Quarry embeds "
        f"{results['config']['chunk_tokens']}-token chunks. Ingest: `POST /add` in requests of {ing['batch']} "
        f"documents ({fmt(ing['add_s'])} s), then `GET /index`, which embeds them all ({fmt(ing['index_s'])} s; "
        f"{ing['indexed']} indexed). Failed searches: {psq['failed']} sequential + {pcc['failed']} concurrent.",
        "",
    ]


def _at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def _ratio(value: float | None, limit: float | None) -> float | None:
    return value / limit if value is not None and limit else None
