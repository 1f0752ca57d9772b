// The search playground: one search, or the same search through two
// pipelines side by side (two jobs), each hit marked when the other side
// lacks it; an answer's citations lead to the hits they quote.

import { attempt, call, finished, lifetime, path } from "./api.js";
import { button, field, fill, h, jsonBlock, needs, options, scriptForm } from "./dom.js";
import { collectionInput } from "./collections.js";

const PIPELINES = ["hybrid", "dense", "keyword", "rerank"];

export function render(view, ctx) {
  const life = lifetime();
  const collection = collectionInput("search-collection", ctx.args[0]);
  const query = h("textarea", { id: "search-query", rows: 2, placeholder: "how do I tie a loop in a rope?" });
  const pipelineA = h("select", { id: "search-pipeline" }, options(PIPELINES.map((p) => [p, p]), "hybrid"));
  const pipelineB = h("select", { id: "search-pipeline-b" }, options(PIPELINES.map((p) => [p, p]), "keyword"));
  const topK = h("input", { id: "search-top-k", type: "number", min: 1, max: 100, value: "10" });
  const collapse = h("input", { id: "search-collapse", type: "checkbox" });
  const answer = h("input", { id: "search-answer", type: "checkbox" });
  const compare = h("input", { id: "search-compare", type: "checkbox" });
  const compareField = field("Compare with", pipelineB);
  compareField.hidden = true;
  compare.addEventListener("change", () => (compareField.hidden = !compare.checked));
  const filters = h("div", { id: "search-filters" });
  const results = h("section", { id: "search-results" });

  // The pipelines' own status (GET /api/v1/pipelines) in their labels.
  call("GET", "/api/v1/pipelines").then(({ data }) => {
    for (const select of [pipelineA, pipelineB]) {
      for (const option of select.options) {
        const p = data.find((item) => item.name === option.value);
        if (p) option.textContent = `${p.name} (${p.status})`;
      }
    }
  }, () => {});

  const form = scriptForm(
    { id: "search-form" },
    [
      h("div", { class: "inline" }, field("Collection", collection), field("Pipeline", pipelineA), field("Top k", topK)),
      field("Query", query),
      h("h3", {}, "Filters"),
      h("p", { class: "muted" }, 'Metadata key = value. A value is read as JSON when it is a number, true/false, a "quoted string" or a [list]; otherwise as text.'),
      filters,
      button("Add filter", () => filters.append(filterRow())),
      h(
        "p",
        {},
        h("label", { class: "check" }, collapse, "Each document once (collapse)"),
        h("label", { class: "check" }, answer, "Answer with citations"),
        h("label", { class: "check" }, compare, "Compare two pipelines"),
        compareField,
      ),
      needs("write", ctx, h("button", { type: "submit", class: "primary", id: "search-submit" }, "Search")),
      ctx.scopes.write ? null : h("p", { class: "muted" }, "A search is a submit: this key has no write scope."),
    ],
    run,
  );

  async function run() {
    const name = view.querySelector("#search-collection").value.trim();
    const body = {
      query: query.value,
      top_k: Number.parseInt(topK.value, 10) || 10,
      collapse: collapse.checked ? "document" : "chunk",
      include_answer: answer.checked,
    };
    const wanted = filterValues(filters);
    if (Object.keys(wanted).length) body.filters = wanted;
    const sides = compare.checked ? [pipelineA.value, pipelineB.value] : [pipelineA.value];
    life.end();
    const columns = sides.map((pipeline, i) => h("div", { class: "result-side", id: `side-${"ab"[i]}` }, h("p", { class: "muted" }, `${pipeline}: submitting…`)));
    fill(results, h("div", { class: sides.length > 1 ? "compare" : "" }, columns));
    const submitted = await attempt(() =>
      Promise.all(sides.map((pipeline) => call("POST", path("/api/v1/collections/{}/search", name), { json: { ...body, pipeline } }))),
    );
    if (!submitted) return fill(results);
    columns.forEach((column, i) => fill(column, h("p", { class: "muted" }, `${sides[i]}: job ${submitted[i].data.id} ${submitted[i].data.status}…`)));
    const jobs = await Promise.all(submitted.map((answer) => finished(answer.data, () => {}, life)));
    const keyOf = body.collapse === "document" ? (hit) => hit.document_id : (hit) => `${hit.document_id}\u0000${hit.chunk_id}`;
    const sets = jobs.map((job) => new Set((job.result?.hits || []).map(keyOf)));
    jobs.forEach((job, i) => {
      const other = jobs.length > 1 ? { pipeline: sides[1 - i], keys: sets[1 - i] } : null;
      fill(columns[i], side(job, "ab"[i], name, keyOf, other));
    });
  }

  filters.append(filterRow());
  fill(view, h("h2", {}, "Search"), form, results);
  return () => life.end();
}

function filterRow() {
  const row = h(
    "div",
    { class: "filter-row" },
    h("input", { class: "filter-key", placeholder: "key", "aria-label": "filter key" }),
    "=",
    h("input", { class: "filter-value", placeholder: "value", "aria-label": "filter value" }),
  );
  row.append(button("Remove", () => row.remove(), { class: "link" }));
  return row;
}

function filterValues(container) {
  const wanted = {};
  for (const row of container.querySelectorAll(".filter-row")) {
    const name = row.querySelector(".filter-key").value.trim();
    const raw = row.querySelector(".filter-value").value.trim();
    if (name) wanted[name] = parseValue(raw);
  }
  return wanted;
}

function parseValue(raw) {
  if (/^(-?\d|true$|false$|"|\[)/.test(raw)) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

// One side of the results: the job, its answer, its hits.
function side(job, tag, collection, keyOf, other) {
  const heading = h(
    "h3",
    {},
    `${job.result?.pipeline || ""} `,
    h("span", { class: "muted" }, "job "),
    h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "search-job-id" }, job.id),
  );
  if (job.status !== "succeeded") {
    return [heading, h("p", { class: "job-error" }, `${job.status}: ${job.error?.message || ""}`), jsonBlock(job)];
  }
  const result = job.result;
  const hits = result.hits || [];
  const meta = h(
    "p",
    { class: "muted" },
    "took ",
    h("span", { class: "took-ms" }, `${result.took_ms} ms`),
    ` · index generation ${result.index_generation}`,
    result.cached ? " · from the result cache" : "",
  );
  const rowFor = (rank) => document.getElementById(`hit-${tag}-${rank}`);
  return [
    heading,
    meta,
    result.answer ? answerBlock(result.answer, hits, tag, rowFor) : null,
    hits.length ? hitTable(hits, tag, collection, keyOf, other) : h("p", { class: "no-hits" }, "No hits."),
  ];
}

function answerBlock(answer, hits, tag, rowFor) {
  const rankOf = (c) => hits.findIndex((hit) => hit.document_id === c.document_id && hit.chunk_id === c.chunk_id) + 1;
  return h(
    "div",
    { class: "answer", id: `answer-${tag}` },
    h("p", { class: "answer-text" }, answer.text),
    h(
      "ol",
      { class: "citations" },
      (answer.citations || []).map((c) => {
        const rank = rankOf(c);
        const target = rank ? button(`hit ${rank}`, () => highlight(rowFor(rank)), { class: "link cite", data: { rank: String(rank) } }) : "(not among the hits)";
        return h("li", {}, `“${c.text}” — ${c.document_id} / ${c.chunk_id} `, target);
      }),
    ),
  );
}

function highlight(row) {
  if (!row) return;
  for (const other of row.parentElement.querySelectorAll("tr.cited")) other.classList.remove("cited");
  row.classList.add("cited");
  row.scrollIntoView({ block: "center" });
}

function hitTable(hits, tag, collection, keyOf, other) {
  const rows = hits.map((hit, i) => {
    const lacking = other && !other.keys.has(keyOf(hit));
    return h(
      "tr",
      { id: `hit-${tag}-${i + 1}`, class: lacking ? "hit only-here" : "hit", data: { documentId: hit.document_id, chunkId: hit.chunk_id } },
      h("td", { class: "num rank" }, i + 1),
      h("td", { class: "num score" }, typeof hit.score === "number" ? hit.score.toFixed(4) : String(hit.score)),
      h(
        "td",
        { class: "document" },
        h("a", { href: `#/documents/${encodeURIComponent(collection)}/${encodeURIComponent(hit.document_id)}` }, hit.document_id),
        lacking ? h("div", {}, h("span", { class: "badge" }, `not in ${other.pipeline}`)) : null,
      ),
      h("td", { class: "chunk" }, hit.chunk_id),
      h("td", { class: "metadata" }, jsonBlock(hit.metadata || {})),
      h("td", { class: "text" }, hit.text),
    );
  });
  return h(
    "table",
    { class: "hits", id: `hits-${tag}` },
    h("thead", {}, h("tr", {}, ["#", "Score", "Document", "Chunk", "Metadata", "Text"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows),
  );
}
