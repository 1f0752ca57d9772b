// Jobs: the list (by status, type and collection, a page at a time), the
// statuses of queued and running ones kept current while the tab is
// visible, cancel, and any job's full JSON.

import { attempt, call, isFinal, lifetime, path, watchJob } from "./api.js";
import { button, field, fill, h, jsonBlock, needs, options, scriptForm, table, when } from "./dom.js";
import { percentOf, progressText } from "./jobcard.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const TYPES = ["ingest", "search", "search_batch", "delete_document", "delete_collection"];
const PAGE_SIZE = 20;

export function render(view, ctx) {
  if (ctx.args[0]) return renderOne(view, ctx, ctx.args[0]);
  const life = lifetime();
  let rowsLife = lifetime(); // the polls of the rows shown; ended when the page of rows changes
  life.add(() => rowsLife.end());
  const status = h("select", { id: "jobs-status" }, options([["", "any status"], ...STATUSES.map((s) => [s, s])], ""));
  const type = h("select", { id: "jobs-type" }, options([["", "any type"], ...TYPES.map((t) => [t, t])], ""));
  const collection = h("input", { id: "jobs-collection", placeholder: "any collection" });
  const rows = h("tbody");
  const newer = button("← Newer", () => show(cursors.length - 2), { id: "jobs-newer" });
  const older = button("Older →", () => show(cursors.length), { id: "jobs-older" });
  const position = h("span", { class: "muted", id: "jobs-page" });
  // cursors[i] is the cursor of page i (null for the first): paging back
  // asks for the same cursor again.
  let cursors = [null];
  let next = null;

  const filters = scriptForm(
    { id: "jobs-filter", class: "inline" },
    [
      field("Status", status),
      field("Type", type),
      field("Collection", collection),
      h("button", { type: "submit", id: "jobs-apply" }, "Apply"),
      button("Refresh", () => show(cursors.length - 1), { id: "jobs-refresh" }),
    ],
    () => {
      cursors = [null];
      show(0);
    },
  );

  async function show(page) {
    if (page < 0) return;
    const cursor = page < cursors.length ? cursors[page] : next;
    if (page >= cursors.length && !next) return;
    const query = { limit: PAGE_SIZE, cursor, status: status.value, type: type.value, collection: collection.value.trim() };
    const answer = await attempt(() => call("GET", "/api/v1/jobs", { query }));
    if (!answer) return;
    cursors = cursors.slice(0, page);
    cursors.push(cursor);
    next = answer.data.next_cursor;
    rowsLife.end();
    rowsLife = lifetime();
    fill(rows, answer.data.items.map((job) => jobRow(job, ctx, rowsLife)));
    if (!answer.data.items.length) rows.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No jobs.")));
    newer.disabled = cursors.length <= 1;
    older.disabled = !next;
    fill(position, `page ${cursors.length}`);
  }

  fill(
    view,
    h("h2", {}, "Jobs"),
    filters,
    table("jobs-table", ["Job", "Type", "Collection", "Status", "Progress", "Created", ""], rows),
    h("div", { class: "toolbar" }, newer, position, older),
  );
  show(0);
  return () => life.end();
}

// One row, polled while the job is queued or running; its JSON opens below it.
function jobRow(job, ctx, life) {
  const status = h("span", { class: "status" });
  const bar = h("progress", { max: 100, value: 0 });
  const percent = h("span", { class: "muted" });
  const details = h("tr", { class: "job-json", hidden: true }, h("td", { colspan: 7 }));
  const cancel = needs(
    "write",
    ctx,
    button("Cancel", () => attempt(async () => update((await call("POST", path("/api/v1/jobs/{}/cancel", job.id))).data)), {
      class: "danger cancel-job",
    }),
  );
  const toggle = button("JSON", () => {
    details.hidden = !details.hidden;
    if (!details.hidden) fill(details.firstChild, jsonBlock(current));
  }, { class: "show-json" });
  const row = h(
    "tr",
    { class: "job", data: { jobId: job.id } },
    h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, h("code", {}, job.id))),
    h("td", {}, job.type),
    h("td", {}, job.collection || "—"),
    h("td", {}, status),
    h("td", {}, bar, " ", percent),
    h("td", {}, when(job.created_at)),
    h("td", {}, cancel, " ", toggle),
  );
  let current = job;
  let watching = null;
  function update(next) {
    current = next;
    row.dataset.status = next.status;
    status.dataset.status = next.status;
    fill(status, next.status + (next.cancel_requested && !isFinal(next) ? " (cancel requested)" : ""));
    bar.value = percentOf(next);
    fill(percent, progressText(next));
    if (isFinal(next)) cancel.remove();
    if (!details.hidden) fill(details.firstChild, jsonBlock(next));
    if (!isFinal(next) && !watching) watching = life.add(watchJob(next, update));
  }
  update(job);
  return [row, details];
}

// One job's full JSON, kept current until it is final.
function renderOne(view, ctx, id) {
  const life = lifetime();
  const json = h("div", { id: "job-json" });
  const state = h("p", {});
  const cancel = needs(
    "write",
    ctx,
    button("Cancel job", () => attempt(async () => update((await call("POST", path("/api/v1/jobs/{}/cancel", id))).data)), {
      class: "danger",
      id: "job-cancel",
    }),
  );
  function update(job) {
    fill(state, "Status ", h("span", { class: "status", id: "job-status", data: { status: job.status } }, job.status), ` · ${progressText(job)}`);
    fill(json, jsonBlock(job));
    if (isFinal(job)) cancel.remove();
  }
  fill(view, h("h2", {}, "Job ", h("code", {}, id)), h("p", {}, h("a", { href: "#/jobs" }, "← all jobs")), state, cancel, json);
  attempt(async () => {
    const { data } = await call("GET", path("/api/v1/jobs/{}", id));
    update(data);
    life.add(watchJob(data, update));
  });
  return () => life.end();
}
