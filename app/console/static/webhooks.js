// Webhooks: endpoints (create, edit events, disable or enable, rotate the
// secret, a test ping, delete) and each one's deliveries (attempts, status
// codes, errors), with redeliver.

import { attempt, call, lifetime, path, whileVisible } from "./api.js";
import { button, confirmInline, field, fill, h, jsonBlock, needs, scriptForm, table, when } from "./dom.js";

const EVENTS = ["job.succeeded", "job.failed", "job.cancelled", "job.progress", "ping", "*"];
// Deliveries have no poll hint: while one is pending the list is read again,
// soon at first (most attempts take milliseconds), then less and less often.
const DELIVERIES_FIRST_MS = 200;
const DELIVERIES_MAX_MS = 3000;

function eventChecks(prefix, checked) {
  return h(
    "span",
    { class: "events", id: `${prefix}-events` },
    EVENTS.map((event) => h("label", { class: "check" }, h("input", { type: "checkbox", value: event, checked: checked.includes(event) }), event)),
  );
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

const checkedEvents = (container) => [...container.querySelectorAll("input:checked")].map((input) => input.value);

function secretBox(id, label, secret) {
  return h("div", { class: "secret", id }, `${label} (shown only now; keep it): `, h("code", {}, secret));
}

export function render(view, ctx) {
  const life = lifetime();
  let deliveriesLife = lifetime();
  life.add(() => deliveriesLife.end());
  const rows = h("tbody");
  const notes = h("div", { id: "webhook-notes" });
  const deliveries = h("section", { id: "deliveries" });

  async function load() {
    const answer = await attempt(() => call("GET", "/api/v1/webhooks", { query: { limit: 100 } }));
    if (!answer) return;
    fill(rows, answer.data.items.map(row));
    if (!answer.data.items.length) rows.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No endpoints.")));
  }

  function row(endpoint) {
    const ep = (suffix = "") => path(`/api/v1/webhooks/{}${suffix}`, endpoint.id);
    const act = (label, className, action) => needs("write", ctx, button(label, () => attempt(action), { class: className }));
    const change = (body) => async () => {
      await call("PATCH", ep(), { json: body });
      await load();
    };
    const edit = h("span", { class: "edit-events", hidden: true });
    fill(
      edit,
      eventChecks(`edit-${endpoint.id}`, endpoint.events),
      button("Save events", () => attempt(change({ events: checkedEvents(edit) })), { class: "save-events" }),
    );
    const remove = needs(
      "write",
      ctx,
      button("Delete", () => confirmInline(remove, "Delete this endpoint and its history?", () => attempt(drop)), {
        class: "danger delete-webhook",
      }),
    );
    async function drop() {
      await call("DELETE", ep());
      fill(deliveries);
      await load();
    }
    async function ping() {
      await call("POST", ep("/test"));
      showDeliveries(endpoint);
    }
    async function rotate() {
      const { data } = await call("POST", ep("/rotate-secret"));
      const label = `New secret of ${endpoint.url}; the old one signs beside it for a while`;
      fill(notes, secretBox("rotated-secret", label, data.secret));
    }
    const actions = [
      button("Deliveries", () => showDeliveries(endpoint), { class: "show-deliveries" }),
      act("Test ping", "test-webhook", ping),
      needs("write", ctx, button("Edit events", () => (edit.hidden = !edit.hidden), { class: "edit-webhook" })),
      act(endpoint.active ? "Disable" : "Enable", "toggle-webhook", change({ active: !endpoint.active })),
      act("Rotate secret", "rotate-webhook", rotate),
      remove,
    ];
    const state = endpoint.active ? "active" : `disabled${endpoint.disabled_reason ? `: ${endpoint.disabled_reason}` : ""}`;
    return h(
      "tr",
      { class: "webhook", data: { endpointId: endpoint.id } },
      h("td", { class: "url" }, endpoint.url, endpoint.description ? h("div", { class: "muted" }, endpoint.description) : null),
      h("td", { class: "events" }, endpoint.events.join(", "), edit),
      h("td", { class: "active" }, state),
      h("td", {}, when(endpoint.created_at)),
      h("td", {}, actions.flatMap((a) => [a, " "])),
    );
  }

  function showDeliveries(endpoint) {
    deliveriesLife.end();
    deliveriesLife = lifetime();
    const body = h("tbody");
    fill(
      deliveries,
      h("h3", {}, "Deliveries to ", h("span", { id: "deliveries-url" }, endpoint.url)),
      table("deliveries-table", ["Event", "State", "Attempts", "Last status", "Last error", "Next attempt", "Created", "Attempts log", ""], body),
    );
    let next = DELIVERIES_FIRST_MS;
    deliveriesLife.add(
      whileVisible(async () => {
        const { data } = await call("GET", path("/api/v1/webhooks/{}/deliveries", endpoint.id), { query: { limit: 50 } });
        fill(body, data.items.map((d) => deliveryRow(endpoint, d, () => showDeliveries(endpoint))));
        if (!data.items.length) body.append(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No deliveries yet.")));
        if (!data.items.some((d) => d.state === "pending")) return null;
        const wait = next;
        next = Math.min(next * 2, DELIVERIES_MAX_MS);
        return wait;
      }),
    );
  }

  function deliveryRow(endpoint, d, refresh) {
    const history = d.attempt_history || [];
    async function redeliver() {
      await call("POST", path("/api/v1/webhooks/{}/deliveries/{}/redeliver", endpoint.id, d.id));
      refresh();
    }
    return h(
      "tr",
      { class: "delivery", data: { deliveryId: d.id, state: d.state } },
      h("td", {}, d.event, d.job_id ? h("div", {}, h("a", { href: `#/jobs/${encodeURIComponent(d.job_id)}` }, d.job_id)) : null),
      h("td", { class: "state" }, d.state),
      h("td", { class: "num attempts" }, d.attempts),
      h("td", { class: "num status-code" }, d.last_status_code ?? "—"),
      h("td", { class: "last-error" }, d.last_error || ""),
      h("td", {}, when(d.next_attempt_at)),
      h("td", {}, when(d.created_at)),
      h("td", {}, history.length ? h("details", {}, h("summary", {}, plural(history.length, "attempt")), jsonBlock(history)) : "—"),
      h(
        "td",
        {},
        needs("write", ctx, button("Redeliver", () => attempt(redeliver), { class: "redeliver" })),
      ),
    );
  }

  fill(
    view,
    h("h2", {}, "Webhooks"),
    needs("write", ctx, createForm(notes, load)),
    notes,
    table("webhooks-table", ["URL", "Events", "State", "Created", ""], rows),
    deliveries,
  );
  load();
  return () => life.end();
}

function createForm(notes, onCreated) {
  const url = h("input", { id: "webhook-url", type: "url", placeholder: "https://example.com/quarry-hook", size: 40 });
  const description = h("input", { id: "webhook-description", placeholder: "optional" });
  const events = eventChecks("webhook", ["job.succeeded", "job.failed"]);
  const form = scriptForm(
    { id: "create-webhook", class: "inline" },
    [
      field("URL", url),
      field("Events", events),
      field("Description", description),
      h("button", { type: "submit", class: "primary", id: "create-webhook-submit" }, "Add endpoint"),
    ],
    async () => {
      const body = { url: url.value.trim(), events: checkedEvents(events) };
      if (description.value.trim()) body.description = description.value.trim();
      const answer = await attempt(() => call("POST", "/api/v1/webhooks", { json: body }));
      if (!answer) return;
      fill(notes, secretBox("webhook-secret", `Signing secret of ${answer.data.url}`, answer.data.secret));
      url.value = "";
      description.value = "";
      onCreated();
    },
  );
  return form;
}
