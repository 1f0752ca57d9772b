// Documents: a collection's list (optionally by metadata), one document's
// metadata, chunk count and content hash, and its deletion (a job).

import { attempt, call, lifetime, path } from "./api.js";
import { button, confirmInline, field, fill, h, jsonBlock, needs, scriptForm, table, when } from "./dom.js";
import { collectionInput } from "./collections.js";
import { jobCard } from "./jobcard.js";

const PAGE_SIZE = 50;

export function render(view, ctx) {
  const life = lifetime();
  const [initialCollection, initialDocument] = ctx.args;
  const collection = collectionInput("docs-collection", initialCollection);
  const metadata = h("input", { id: "docs-metadata", placeholder: '{"team": "docs"}', size: 30 });
  const rows = h("tbody");
  const more = button("More", () => load(cursor), { id: "docs-more", hidden: true });
  const detail = h("section", { id: "doc-detail" });
  let cursor = null;
  const name = () => view.querySelector("#docs-collection").value.trim();

  const form = scriptForm(
    { id: "docs-form", class: "inline" },
    [
      field("Collection", collection),
      field("Metadata filter (JSON)", metadata),
      h("button", { type: "submit", id: "docs-load" }, "List documents"),
    ],
    () => {
      const wanted = name();
      // The collection goes into the address, so a reload or a link shows it again.
      if (wanted && wanted !== initialCollection) location.hash = `#/documents/${encodeURIComponent(wanted)}`;
      else load();
    },
  );

  async function load(from = null) {
    if (!name()) return;
    const query = { limit: PAGE_SIZE, cursor: from, metadata: metadata.value.trim() };
    const answer = await attempt(() => call("GET", path("/api/v1/collections/{}/documents", name()), { query }));
    if (!answer) return;
    if (!from) rows.replaceChildren();
    rows.append(...answer.data.items.map(row));
    if (!from && !answer.data.items.length) rows.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No documents.")));
    cursor = answer.data.next_cursor;
    more.hidden = !cursor;
  }

  function row(doc) {
    return h(
      "tr",
      { class: "document", data: { documentId: doc.id } },
      h("td", {}, button(doc.id, () => open(doc.id), { class: "link open-document" })),
      h("td", { class: "num" }, doc.chunks),
      h("td", {}, doc.status),
      h("td", {}, doc.source || ""),
      h("td", {}, when(doc.created_at)),
      h("td", {}, jsonBlock(doc.metadata || {})),
    );
  }

  async function open(id) {
    const answer = await attempt(() => call("GET", path("/api/v1/collections/{}/documents/{}", name(), id)));
    if (!answer) return;
    const doc = answer.data;
    const jobs = h("div", {});
    const remove = needs(
      "write",
      ctx,
      button("Delete document", () => confirmInline(remove, `Delete ${doc.id}?`, () => drop(doc, jobs)), {
        class: "danger",
        id: "delete-document",
      }),
    );
    fill(
      detail,
      h("h3", {}, "Document ", h("code", { id: "doc-id" }, doc.id)),
      h(
        "dl",
        {},
        h("dt", {}, "Status"),
        h("dd", { id: "doc-status" }, doc.status),
        h("dt", {}, "Chunks"),
        h("dd", { id: "doc-chunks" }, doc.chunks),
        h("dt", {}, "Content hash (SHA-256)"),
        h("dd", {}, h("code", { id: "doc-hash" }, doc.content_hash)),
        h("dt", {}, "Source"),
        h("dd", {}, doc.source || "—"),
        h("dt", {}, "Created"),
        h("dd", {}, when(doc.created_at)),
        h("dt", {}, "Metadata"),
        h("dd", {}, jsonBlock(doc.metadata || {}, { id: "doc-metadata" })),
      ),
      remove,
      jobs,
    );
    detail.scrollIntoView({ block: "nearest" });
  }

  async function drop(doc, jobs) {
    const answer = await attempt(() => call("DELETE", path("/api/v1/collections/{}/documents/{}", name(), doc.id)));
    if (answer) fill(jobs, jobCard(answer.data, ctx, life, { id: "delete-document-job", onFinal: () => load() }));
  }

  fill(
    view,
    h("h2", {}, "Documents"),
    form,
    detail,
    table("documents-table", ["Id", "Chunks", "Status", "Source", "Created", "Metadata"], rows),
    more,
  );
  if (initialCollection) {
    load();
    if (initialDocument) open(initialDocument);
  }
  return () => life.end();
}
