// A job followed live: the card a submit leaves on the page (an upload's
// ingest, a delete) with its status and a progress bar that moves as the
// job's poll hints say.

import { attempt, call, isFinal, path, watchJob } from "./api.js";
import { button, fill, h, needs } from "./dom.js";

export function percentOf(job) {
  const percent = job.progress?.percent;
  return typeof percent === "number" ? percent : isFinal(job) && job.status === "succeeded" ? 100 : 0;
}

export function progressText(job) {
  const p = job.progress || {};
  const counts = typeof p.total === "number" && p.total > 0 ? `${p.processed ?? 0} of ${p.total} · ` : "";
  return `${counts}${percentOf(job)} %`;
}

// Answers the card's element; onUpdate(job) and onFinal(job) are called as
// the job moves. `life` stops the polling when the page goes.
export function jobCard(job, ctx, life, { id, onUpdate = () => {}, onFinal = () => {} } = {}) {
  const status = h("span", { class: "status job-status" });
  const bar = h("progress", { class: "job-progress", max: 100, value: 0 });
  const percent = h("span", { class: "job-percent" });
  const error = h("p", { class: "job-error", hidden: true });
  const cancel = needs(
    "write",
    ctx,
    button("Cancel job", () => attempt(async () => show((await call("POST", path("/api/v1/jobs/{}/cancel", job.id))).data)), {
      class: "job-cancel",
    }),
  );
  const card = h(
    "section",
    { class: "job-card", id, data: { jobId: job.id } },
    h("p", {}, "Job ", h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "job-id" }, job.id), ` · ${job.type} · `, status),
    h("p", {}, bar, " ", percent),
    error,
    cancel,
  );
  let stopped = false;
  function show(next) {
    fill(status, next.status);
    status.dataset.status = next.status;
    bar.value = percentOf(next);
    fill(percent, progressText(next));
    if (next.error) {
      fill(error, `${next.error.code}: ${next.error.message}`);
      error.hidden = false;
    }
    if (isFinal(next)) {
      cancel.remove();
      if (!stopped) {
        stopped = true;
        onFinal(next);
      }
    } else {
      onUpdate(next);
    }
  }
  show(job);
  if (!isFinal(job)) life.add(watchJob(job, show));
  return card;
}
