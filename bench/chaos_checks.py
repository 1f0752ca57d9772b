"""What the chaos run checks once the service is quiet again: every accepted
job final; every document stored exactly once with the chunks its text
makes; every search answered as a re-run on the quiet service answers it;
every webhook event delivered, under one webhook-id, in order per job."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import redis

from app.services.jobs import TERMINAL
from bench.chaos_faults import jobs_in_flight
from bench.chaos_ledger import Document, Ledger, RecordingClient, Submitted
from bench.common import settings

# Scores of one search computed twice may differ in the last float bits
# (vectors encoded in a batch of another size); ids, order and texts may not.
SCORE_TOLERANCE = 1e-4
EVIDENCE = 5  # examples kept of each kind of failure
RERUN_TIMEOUT_S = 120.0


def fetch_jobs(new_client: Callable[[], RecordingClient], ids: list[str], threads: int = 4) -> dict[str, dict]:
    """The jobs as they are now (those that answered 200)."""

    def one(chunk: list[str]) -> dict[str, dict]:
        client, found = new_client(), {}
        for job_id in chunk:
            answer = client.send("GET", f"/api/v1/jobs/{job_id}")
            if answer is not None and answer.status_code == 200:
                found[job_id] = answer.json()
        return found

    chunks = [ids[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return {k: v for part in pool.map(one, chunks) for k, v in part.items()}


def check_jobs(ledger: Ledger, final: dict[str, dict], client: RecordingClient) -> dict:
    jobs = list(ledger.jobs.values())
    not_final = [j.id for j in jobs if final.get(j.id, {}).get("status") not in TERMINAL]
    # A job its client saw final must never move again.
    moved = [j.id for j in jobs if j.seen_final and final.get(j.id, {}).get("status") != j.seen_final["status"]]
    outcomes = Counter(f"{j.kind} {final[j.id]['status']}" for j in jobs if j.id in final)
    errors = Counter(f"{j.kind} {(final[j.id].get('error') or {}).get('code')}" for j in jobs
                     if final.get(j.id, {}).get("status") == "failed")  # fmt: skip
    cancels = Counter(str(j.cancel_status or "no answer") for j in jobs if j.cancel_status is not None)
    return {
        "accepted": len(jobs), "final": len(jobs) - len(not_final), "not_final": not_final[:50],
        "replayed_submits": sum(j.replayed for j in jobs), "moved_after_final": moved,
        "outcomes": dict(sorted(outcomes.items())), "failures": dict(sorted(errors.items())),
        "cancel_answers": dict(cancels), "refused_submits": dict(ledger.refused), "other_answers": dict(ledger.other_answers),
        "in_flight_on_the_server": jobs_in_flight(client),
        "retried_attempts": sum(1 for j in jobs if final.get(j.id, {}).get("attempts", 1) > 1),
    }  # fmt: skip


class ChunkOracle:
    """The chunks and content hash a document's text makes, computed here with
    the service's own extraction and chunking (the tokenizer alone, no model)."""

    def __init__(self) -> None:
        from transformers import AutoTokenizer

        from app.search.embedding import resolve_model_path, stay_offline

        stay_offline()
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(settings.embedding_model)))

    def expect(self, doc: Document) -> tuple[int, str]:
        from app.search.chunking import chunk_text
        from app.search.extract import extract

        text = (
            doc.text if doc.data is None else extract(doc.id, doc.data, max_chars=settings.max_extracted_chars)[0].text
        )
        chunks = chunk_text(text, self.tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens)
        return len(chunks), hashlib.sha256(text.encode()).hexdigest()


def list_all(client: RecordingClient, path: str) -> list[dict]:
    items, cursor = [], None
    while True:
        answer = client.get(f"{path}{'&' if '?' in path else '?'}limit=100" + (f"&cursor={cursor}" if cursor else ""))
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
        page = answer.json()
        items += page["items"]
        if not (cursor := page.get("next_cursor")):
            return items


def check_documents(ledger: Ledger, final: dict[str, dict], client: RecordingClient, oracle: ChunkOracle) -> dict:
    """Per collection: the documents listed against those whose ingest
    succeeded (required) and those any accepted ingest carried (allowed);
    each one's chunks and content hash against the oracle; the collection's
    counts against the listing."""
    out: dict = {"collections": {}, "lost": [], "unexpected": [], "refused_but_stored": [], "wrong_chunks": [],
                 "wrong_content": [], "count_disagreements": []}  # fmt: skip
    for collection, sent in ledger.documents.items():
        ingests = [j for j in ledger.jobs.values() if j.kind == "ingest" and j.collection == collection]
        required = {
            d
            for j in ingests
            if final.get(j.id, {}).get("status") == "succeeded"
            for d in succeeded_ids(j, final[j.id])
        }
        allowed = {d for j in ingests for d in j.documents} | ledger.unknown_documents.get(collection, set())
        listed = list_all(client, f"/api/v1/collections/{collection}/documents")
        ids = Counter(doc["id"] for doc in listed)
        info = client.get(f"/api/v1/collections/{collection}").json()
        out["lost"] += [f"{collection}/{d}" for d in sorted(required - set(ids))]
        out["unexpected"] += [f"{collection}/{d}" for d in sorted(set(ids) - allowed)]
        out["refused_but_stored"] += [
            f"{collection}/{d}" for d in sorted(ledger.refused_documents.get(collection, set()) & set(ids) - allowed)
        ]
        for doc in listed:
            if doc["id"] in sent:
                chunks, digest = oracle.expect(sent[doc["id"]])
                if doc["chunks"] != chunks:
                    out["wrong_chunks"].append(
                        f"{collection}/{doc['id']}: {doc['chunks']} chunks, its text makes {chunks}"
                    )
                if doc["content_hash"] != digest:
                    out["wrong_content"].append(f"{collection}/{doc['id']}")
        listed_chunks = sum(doc["chunks"] for doc in listed)
        if (info["documents"], info["chunks"]) != (len(listed), listed_chunks):
            out["count_disagreements"].append(f"{collection}: the collection says {info['documents']} documents, "
                                              f"{info['chunks']} chunks; its documents {len(listed)}, {listed_chunks}")  # fmt: skip
        out["collections"][collection] = {
            "documents": info["documents"], "chunks": info["chunks"], "generation": info["generation"],
            "required": len(required), "allowed": len(allowed), "listed_twice": sum(n > 1 for n in ids.values()),
        }  # fmt: skip
    out["duplicates"] = sum(c["listed_twice"] for c in out["collections"].values()) + len(out["wrong_chunks"])
    return out


def succeeded_ids(job: Submitted, final: dict) -> set[str]:
    """A succeeded ingest's documents, but those it reports failed."""
    failed = {entry["source"] for entry in (final.get("result") or {}).get("failed", [])}
    return set(job.documents) - failed


def check_searches(ledger: Ledger, final: dict[str, dict], generations: dict[str, int],
                   new_client: Callable[[], RecordingClient], redis_url: str, log) -> dict:  # fmt: skip
    """Re-run, on the quiet service and with the result cache emptied, every
    distinct search that was answered at the generation its collection still
    has; searches answered at an older generation cannot be re-run on the
    same state and are only counted."""
    searches = [j for j in ledger.jobs.values() if j.kind in ("search", "search_batch")]
    succeeded = [j for j in searches if final.get(j.id, {}).get("status") == "succeeded"]
    comparable = [
        j for j in succeeded if final[j.id]["result"].get("index_generation") == generations.get(j.collection)
    ]
    distinct: dict[str, list[Submitted]] = defaultdict(list)
    for job in comparable:
        distinct[search_key(job)].append(job)
    emptied = empty_search_cache(redis_url)
    log(f"re-running {len(distinct)} distinct searches of {len(comparable)} ({emptied} cache entries removed)")
    reruns = rerun(list(distinct.values()), new_client)
    out = {"searches": len(searches), "succeeded": len(succeeded), "older_generation": len(succeeded) - len(comparable),
           "compared": len(comparable), "distinct_reruns": len(distinct), "rerun_failed": 0, "rerun_cached": 0,
           "identical": 0, "different": 0, "max_score_difference": 0.0, "differences": [],
           "cached_originals": sum(bool(final[j.id]["result"].get("cached")) for j in comparable),
           "answered_from_cache": sum(bool(final[j.id]["result"].get("cached")) for j in succeeded)}  # fmt: skip
    for jobs, again in zip(distinct.values(), reruns):
        if again is None or again["status"] != "succeeded":
            out["rerun_failed"] += len(jobs)
            continue
        out["rerun_cached"] += bool(again["result"].get("cached"))
        for job in jobs:
            same, difference = same_hits(final[job.id]["result"], again["result"])
            out["max_score_difference"] = max(out["max_score_difference"], difference)
            out["identical" if same else "different"] += 1
            if not same and len(out["differences"]) < EVIDENCE:
                out["differences"].append({"job": job.id, "rerun": again["id"], "collection": job.collection,
                                           "body": job.body, "was": top_ids(final[job.id]["result"]),
                                           "rerun_gives": top_ids(again["result"])})  # fmt: skip
    return out


def search_key(job: Submitted) -> str:
    body = {k: v for k, v in (job.body or {}).items() if k != "callback_url"}
    return json.dumps([job.path, body], sort_keys=True)


def empty_search_cache(redis_url: str) -> int:
    """Remove the cached answers (and in-flight marks), so a re-run computes."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter("quarry:search-cache:*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def rerun(
    groups: list[list[Submitted]], new_client: Callable[[], RecordingClient], threads: int = 2
) -> list[dict | None]:
    def one(jobs: list[Submitted]) -> dict | None:
        client, job = new_client(), jobs[0]
        body = {k: v for k, v in (job.body or {}).items() if k != "callback_url"}
        answer = client.send("POST", job.path, json=body, timeout=60)
        if answer is None or answer.status_code != 202:
            return None
        return client.wait_final(answer.json()["id"], RERUN_TIMEOUT_S)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, groups))


def hit_lists(result: dict) -> list[list[dict]]:
    return [entry["hits"] for entry in result["results"]] if "results" in result else [result["hits"]]


def same_hits(was: dict, again: dict) -> tuple[bool, float]:
    """(same ids, order and texts with scores within SCORE_TOLERANCE, the largest score difference)."""
    first, second = hit_lists(was), hit_lists(again)
    if [len(h) for h in first] != [len(h) for h in second]:
        return False, 0.0
    pairs = [(a, b) for x, y in zip(first, second) for a, b in zip(x, y)]
    difference = max((abs(a["score"] - b["score"]) for a, b in pairs), default=0.0)
    same = all(
        (a["document_id"], a["chunk_id"], a["text"]) == (b["document_id"], b["chunk_id"], b["text"]) for a, b in pairs
    )
    return same and difference <= SCORE_TOLERANCE, difference


def top_ids(result: dict) -> list[list[str]]:
    return [[f"{h['document_id']}#{h['chunk_id']}" for h in hits[:5]] for hits in hit_lists(result)]
