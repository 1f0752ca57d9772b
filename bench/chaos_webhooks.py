"""The chaos run's webhook checks, per receiver: every event the service
meant for it arrived and was answered 2xx at least once; each event came
under one `webhook-id` (its own id) on every attempt; a job's events came in
the order they happened (an event's first attempt never before the earlier
event's successful one)."""

from __future__ import annotations

from collections import Counter, defaultdict

from bench.chaos_checks import EVIDENCE, list_all
from bench.chaos_faults import Arrival, ScriptedReceiver
from bench.chaos_ledger import Ledger, RecordingClient
from bench.measure import epoch_seconds

FINAL_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")


def check_webhooks(ledger: Ledger, final: dict[str, dict], receivers: dict[str, ScriptedReceiver],
                   endpoints: dict[str, str], registered_at: float, client: RecordingClient) -> dict:  # fmt: skip
    """`endpoints`: receiver name -> the id of the endpoint registered for it
    (at `registered_at`); a receiver without one gets the jobs' own
    callback_url deliveries."""
    out = {}
    for name, receiver in receivers.items():
        arrivals = receiver.arrivals()
        events: dict[str, list[Arrival]] = defaultdict(list)
        for arrival in arrivals:
            events[arrival.event["id"]].append(arrival)
        figures = delivery_figures(events)
        figures["requests"] = len(arrivals)
        if name in endpoints:
            deliveries = list_all(client, f"/api/v1/webhooks/{endpoints[name]}/deliveries")
            figures.update(endpoint_expectations(ledger, final, events, deliveries, registered_at))
        else:
            figures.update(callback_expectations(ledger, final, events))
        figures["episodes"] = receiver.episodes
        out[name] = figures
    return out


def delivery_figures(events: dict[str, list[Arrival]]) -> dict:
    ok = {event_id: [a for a in arrived if a.succeeded] for event_id, arrived in events.items()}
    mismatched = [event_id for event_id, arrived in events.items() if {a.webhook_id for a in arrived} != {event_id}]
    return {
        "events": len(events),
        "events_by_type": dict(Counter(arrived[0].event["type"] for arrived in events.values())),
        "retried_events": sum(len(arrived) > 1 for arrived in events.values()),
        "redelivered_after_success": sum(len(s) > 1 for s in ok.values()),
        "webhook_id_mismatches": len(mismatched),
        "webhook_id_examples": mismatched[:EVIDENCE],
        **order_figures(events, ok),
    }


def order_figures(events: dict[str, list[Arrival]], ok: dict[str, list[Arrival]]) -> dict:
    """Per job, its events in the order they happened: each one's first
    attempt must come after the earlier one's first successful attempt, and
    progress must not go backwards."""
    by_job: dict[str, list[str]] = defaultdict(list)
    for event_id, arrived in events.items():
        if (job := arrived[0].event.get("data", {}).get("job")) is not None:
            by_job[job["id"]].append(event_id)
    reordered, examples = 0, []
    for job_id, ids in by_job.items():
        ids.sort(key=lambda e: epoch_seconds(events[e][0].event["created_at"]))
        for earlier, later in zip(ids, ids[1:]):
            first_later = min(a.at for a in events[later])
            delivered = min((a.at for a in ok[earlier]), default=None)
            processed = [
                (events[e][0].event["data"]["job"].get("progress") or {}).get("processed", 0) for e in (earlier, later)
            ]
            if (delivered is not None and first_later < delivered) or processed[1] < processed[0]:
                reordered += 1
                if len(examples) < EVIDENCE:
                    examples.append({"job": job_id, "earlier": [earlier, events[earlier][0].event["type"], delivered],
                                     "later": [later, events[later][0].event["type"], first_later]})  # fmt: skip
    return {"jobs": len(by_job), "reordered": reordered, "reordered_examples": examples}


def endpoint_expectations(ledger: Ledger, final: dict[str, dict], events: dict[str, list[Arrival]],
                          deliveries: list[dict], registered_at: float) -> dict:  # fmt: skip
    """An endpoint's deliveries, as the service lists them, against what
    arrived; and every job that ended after the endpoint was registered
    against those deliveries (its final event must have been written: the
    outbox lost nothing)."""
    delivered = {event_id for event_id, arrived in events.items() if any(a.succeeded for a in arrived)}
    listed = {(d["job_id"], d["event"]) for d in deliveries}
    missing = [d for d in deliveries if d["event_id"] not in delivered]
    unwritten = [job.id for job in ledger.jobs.values()
                 if final.get(job.id, {}).get("status") in ("succeeded", "failed", "cancelled")
                 and epoch_seconds(final[job.id]["finished_at"]) >= registered_at
                 and (job.id, f"job.{final[job.id]['status']}") not in listed]  # fmt: skip
    return {
        "expected": len(deliveries),
        "delivery_states": dict(Counter(d["state"] for d in deliveries)),
        "most_attempts": max((d["attempts"] for d in deliveries), default=0),
        "missing": len(missing),
        "missing_examples": [
            {k: d.get(k) for k in ("event_id", "event", "job_id", "state", "attempts", "last_error")}
            for d in missing[:EVIDENCE]
        ],  # fmt: skip
        "final_events_not_written": len(unwritten),
        "final_events_not_written_examples": unwritten[:EVIDENCE],
        "arrived_but_not_listed": len(set(events) - {d["event_id"] for d in deliveries}),
    }


def callback_expectations(ledger: Ledger, final: dict[str, dict], events: dict[str, list[Arrival]]) -> dict:
    """Each job that named this receiver in callback_url: its final event arrived and was answered 2xx."""
    delivered = {(a.event["data"]["job"]["id"], a.event["type"]) for arrived in events.values()
                 for a in arrived if a.succeeded and "job" in a.event.get("data", {})}  # fmt: skip
    expected = [(job.id, f"job.{final[job.id]['status']}") for job in ledger.jobs.values()
                if job.callback and final.get(job.id, {}).get("status") in ("succeeded", "failed", "cancelled")]  # fmt: skip
    missing = [pair for pair in expected if pair not in delivered]
    unasked = [
        a.event["type"] for arrived in events.values() for a in arrived[:1] if a.event["type"] not in FINAL_EVENTS
    ]
    return {"expected": len(expected), "missing": len(missing), "missing_examples": missing[:EVIDENCE],
            "events_not_asked_for": len(unasked)}  # fmt: skip
