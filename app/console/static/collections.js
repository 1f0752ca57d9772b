// Collections: list (documents, chunks, index type, generation), create, delete.

import { attempt, call, lifetime, path } from "./api.js";
import { button, confirmInline, field, fill, h, needs, options, scriptForm, table, when } from "./dom.js";
import { jobCard } from "./jobcard.js";

const LIST_LIMIT = 100;

// A text input offering the tenant's collections (other pages pick one with it).
export function collectionInput(id, value, { onPick } = {}) {
  const list = h("datalist", { id: `${id}-options` });
  const input = h("input", { id, value: value || "", list: `${id}-options`, autocomplete: "off", placeholder: "collection" });
  call("GET", "/api/v1/collections", { query: { limit: LIST_LIMIT } })
    .then(({ data }) => fill(list, data.items.map((c) => h("option", { value: c.name }))))
    .catch(() => {}); // the page's own calls show what is wrong
  if (onPick) input.addEventListener("change", () => onPick(input.value.trim()));
  return h("span", {}, input, list);
}

export function render(view, ctx) {
  const life = lifetime();
  const rows = h("tbody");
  const more = button("More", () => load(cursor), { id: "collections-more", hidden: true });
  const jobs = h("div", { id: "collection-jobs" });
  let cursor = null;

  async function load(from = null) {
    const answer = await attempt(() => call("GET", "/api/v1/collections", { query: { limit: LIST_LIMIT, cursor: from } }));
    if (!answer) return;
    if (!from) rows.replaceChildren();
    rows.append(...answer.data.items.map((c) => row(c)));
    cursor = answer.data.next_cursor;
    more.hidden = !cursor;
  }

  function row(c) {
    const name = encodeURIComponent(c.name);
    const remove = needs(
      "write",
      ctx,
      button("Delete", () => confirmInline(remove, `Delete ${c.name} with its documents and index?`, () => drop(c)), {
        class: "danger delete-collection",
      }),
    );
    return h(
      "tr",
      { data: { collection: c.name } },
      h("td", {}, h("a", { href: `#/documents/${name}` }, c.name)),
      h("td", {}, c.description || ""),
      h("td", { class: "num" }, c.documents),
      h("td", { class: "num" }, c.chunks),
      h("td", {}, c.index_type),
      h("td", { class: "num" }, c.generation),
      h("td", {}, when(c.created_at)),
      h(
        "td",
        {},
        needs("write", ctx, h("a", { href: `#/upload/${name}` }, "Upload")),
        " ",
        needs("write", ctx, h("a", { href: `#/search/${name}` }, "Search")),
        " ",
        remove,
      ),
    );
  }

  async function drop(c) {
    const answer = await attempt(() => call("DELETE", path("/api/v1/collections/{}", c.name)));
    if (!answer) return;
    jobs.prepend(
      h(
        "div",
        {},
        h("h3", {}, `Deleting ${c.name}`),
        jobCard(answer.data, ctx, life, { onFinal: () => load() }),
      ),
    );
  }

  const create = needs("write", ctx, createForm(() => load()));
  fill(
    view,
    h("h2", {}, "Collections"),
    create,
    jobs,
    table("collections-table", ["Name", "Description", "Documents", "Chunks", "Index", "Generation", "Created", ""], rows),
    more,
  );
  load();
  return () => life.end();
}

function createForm(onCreated) {
  const name = h("input", { id: "new-collection-name", required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", placeholder: "notes" });
  const description = h("input", { id: "new-collection-description", placeholder: "what it holds" });
  const indexType = h("select", { id: "new-collection-index" }, options([["flat", "flat (exact)"], ["hnsw", "hnsw (approximate)"]], "flat"));
  const created = h("p", { id: "collection-created", class: "muted" });
  const form = scriptForm(
    { id: "create-collection", class: "inline" },
    [
      field("Name", name, "a-z, 0-9, _ and -"),
      field("Description", description),
      field("Index type", indexType),
      h("button", { type: "submit", class: "primary", id: "create-collection-submit" }, "Create collection"),
      created,
    ],
    async () => {
      const body = { name: name.value.trim(), index_type: indexType.value };
      if (description.value.trim()) body.description = description.value.trim();
      const answer = await attempt(() => call("POST", "/api/v1/collections", { json: body }));
      if (!answer) return;
      fill(created, `Created ${answer.data.name}.`);
      name.value = "";
      description.value = "";
      onCreated();
    },
  );
  return form;
}
