// API keys (shown only for an admin key): list, create (the secret shown
// once), rotate, revoke.

import { attempt, call, path } from "./api.js";
import { button, confirmInline, field, fill, h, options, scriptForm, table, when } from "./dom.js";

const SCOPES = ["read", "write", "admin"];
const TIERS = ["free", "pro", "enterprise"];

export function render(view) {
  const rows = h("tbody");
  const notes = h("div", { id: "key-notes" });

  async function load() {
    const answer = await attempt(() => call("GET", "/api/v1/keys", { query: { limit: 100 } }));
    if (answer) fill(rows, answer.data.items.map(row));
  }

  function shown(label, created) {
    fill(notes, h("div", { class: "secret", id: "new-key" }, `${label} (shown only now; keep it): `, h("code", { id: "new-key-secret" }, created.key)));
  }

  function row(k) {
    const revoke = button("Revoke", () => confirmInline(revoke, `Revoke ${k.prefix}? It stops working at once.`, () => attempt(async () => {
      await call("DELETE", path("/api/v1/keys/{}", k.id));
      await load();
    })), { class: "danger revoke-key" });
    const rotate = button("Rotate", () => attempt(async () => {
      const { data } = await call("POST", path("/api/v1/keys/{}/rotate", k.id));
      shown(`New key replacing ${k.prefix}; the old one works for a grace period`, data);
      await load();
    }), { class: "rotate-key" });
    return h(
      "tr",
      { class: "key", data: { keyId: k.id, prefix: k.prefix } },
      h("td", {}, h("code", {}, k.prefix)),
      h("td", {}, k.name),
      h("td", {}, (k.scopes || []).join(", ")),
      h("td", {}, k.tier),
      h("td", {}, when(k.created_at)),
      h("td", {}, when(k.last_used_at)),
      h("td", {}, when(k.expires_at)),
      h("td", { class: "revoked" }, k.revoked ? `revoked ${when(k.revoked_at)}` : "no"),
      h("td", {}, k.revoked ? null : [rotate, " ", revoke]),
    );
  }

  const name = h("input", { id: "new-key-name", placeholder: "reader" });
  const scopes = h(
    "span",
    { id: "new-key-scopes" },
    SCOPES.map((s) => h("label", { class: "check" }, h("input", { type: "checkbox", value: s, checked: s === "read" }), s)),
  );
  const tier = h("select", { id: "new-key-tier" }, options(TIERS.map((t) => [t, t]), "free"));
  const expires = h("input", { id: "new-key-expires", type: "datetime-local" });
  const form = scriptForm(
    { id: "create-key", class: "inline" },
    [
      field("Name", name),
      field("Scopes", scopes),
      field("Tier", tier),
      field("Expires (optional, your time)", expires),
      h("button", { type: "submit", class: "primary", id: "create-key-submit" }, "Create key"),
    ],
    async () => {
      const body = {
        name: name.value.trim(),
        scopes: [...scopes.querySelectorAll("input:checked")].map((input) => input.value),
        tier: tier.value,
      };
      // datetime-local is the person's local time; the API wants UTC ISO 8601.
      if (expires.value) body.expires_at = new Date(expires.value).toISOString();
      const answer = await attempt(() => call("POST", "/api/v1/keys", { json: body }));
      if (!answer) return;
      shown(`Key ${answer.data.prefix}`, answer.data);
      name.value = "";
      await load();
    },
  );

  fill(
    view,
    h("h2", {}, "API keys"),
    form,
    notes,
    table("keys-table", ["Prefix", "Name", "Scopes", "Tier", "Created", "Last used", "Expires", "Revoked", ""], rows),
  );
  load();
  return null;
}
