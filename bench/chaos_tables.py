"""The chaos run's tables in docs/benchmarks.md, from its entry in the results file."""

from __future__ import annotations

from bench.tables import fmt, run_table, table

CHECKS = ("jobs", "documents", "webhooks", "searches")


def chaos(r: dict) -> list[str]:
    broken = [[name, r[name]["script_error"].strip().splitlines()[-1]] for name in CHECKS if "script_error" in r[name]]
    if broken:
        return [*run_table(r), *table(["Check", "Stopped on an error of the run's script"], broken)]
    jobs, docs, searches, answers = r["jobs"], r["documents"], r["searches"], r["answers"]
    collections = "; ".join(f"{name} {c['documents']:,} documents / {c['chunks']:,} chunks"
                            for name, c in docs["collections"].items())  # fmt: skip
    return [
        *run_table(r, [
            ["Database; load minutes; pipelines", f"{r['database']}; {fmt(r['minutes'], 0)}; {', '.join(r['pipelines'])}"],
            ["Service settings changed", ", ".join(f"{k}={v}" for k, v in r["service_settings"].items())],
            ["Quiet drain (s); jobs not final; deliveries pending after it",
             f"{fmt(r['drain']['seconds'])}; {r['drain']['jobs_not_final']}; {r['drain']['deliveries_pending']}"],
        ]),
        *table(["Check", "Figure"], [
            ["Jobs accepted / final (not final)", f"{jobs['accepted']:,} / {jobs['final']:,} ({len(jobs['not_final'])})"],
            ["Outcomes", ", ".join(f"{k} {v:,}" for k, v in jobs["outcomes"].items())],
            ["Jobs run more than once (attempts > 1); finished jobs that moved again",
             f"{jobs['retried_attempts']}; {len(jobs['moved_after_final'])}"],
            ["Submits refused (status: count)", ", ".join(f"{k}: {v}" for k, v in jobs["refused_submits"].items()) or "none"],
            ["Cancel answers", ", ".join(f"{k}: {v}" for k, v in jobs["cancel_answers"].items()) or "none"],
            ["Requests answered; 500; other 5xx but 503; 503; connection errors",
             f"{answers['requests']:,}; {answers['server_errors_500']}; {answers['other_5xx_but_503']}; "
             f"{answers['unavailable_503']:,}; {answers['connection_errors']:,}"],
            ["Naive free-tier clients' answers (10 ms poller; tight-loop submitter)",
             "; ".join(", ".join(f"{k}: {v:,}" for k, v in sorted(a.items())) for a in r.get("naive_answers", {}).values())
             or "not run"],
            ["Collections at the end", collections],
            ["Documents lost / duplicated / unexpected / refused yet stored / wrong content / count disagreements",
             " / ".join(str(x) for x in (len(docs["lost"]), docs["duplicates"], len(docs["unexpected"]),
                                         len(docs["refused_but_stored"]), len(docs["wrong_content"]),
                                         len(docs["count_disagreements"])))],
            ["Searches succeeded; at an older generation (not re-runnable); compared",
             f"{searches['succeeded']:,}; {searches['older_generation']:,}; {searches['compared']:,}"],
            ["Compared searches identical / different on a quiet re-run (distinct re-runs; re-runs failed)",
             f"{searches['identical']:,} / {searches['different']} ({searches['distinct_reruns']:,}; {searches['rerun_failed']})"],
            ["Largest score difference on a re-run", f"{searches['max_score_difference']:.2e}"],
            ["Tracebacks in the service logs (most frequent)",
             f"{r['service_log_tracebacks']['total']:,}" + "".join(
                 f"<br>{n:,} × {kind}" for n, kind in r["service_log_tracebacks"]["kinds"][:4])],
            ["Defects found", "; ".join(r["defects"]) or "none"],
        ]),
        *table(["Webhook receiver", "Events arrived", "Expected", "Missing", "webhook-id mismatches", "Reordered",
                "Sent again after a 2xx", "Its faults"], [
            [name, fmt(w["events"]), fmt(w["expected"]), w["missing"], w["webhook_id_mismatches"], w["reordered"],
             w["redelivered_after_success"], episodes(w["episodes"])] for name, w in r["webhooks"].items()
        ]),
        *table(["Fault", "At (s)", "Down (s)", "Healed: probe search succeeded after (s)", "Jobs in flight",
                "All of them final after (s)", "Note"], [
            [f["fault"], fmt(f["started_s"]), fmt(f["down_s"]), fmt(f["heal_s"]), f["inflight"],
             fmt(f["inflight_final_s"]), f["note"]] for f in r["faults"]
        ]),
    ]  # fmt: skip


def episodes(changes: list[dict]) -> str:
    said = [f"{fmt(c['at_s'], 0)} s: " + ("back" if c["status"] == 200 and not c["delay_s"] else
            f"{c['status']}" + (f" after {fmt(c['delay_s'], 0)} s" if c["delay_s"] else "")) for c in changes]  # fmt: skip
    return "; ".join(said) or "none"
