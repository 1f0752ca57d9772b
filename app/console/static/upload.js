// Upload: files or a whole folder, dropped on the page or chosen, sent as one
// multipart ingest; the job's progress follows its poll hints, and the end
// shows the counts and every file that failed, with its reason.

import { attempt, call, lifetime, path, showProblem } from "./api.js";
import { fill, field, h, needs } from "./dom.js";
import { collectionInput } from "./collections.js";
import { jobCard } from "./jobcard.js";

// What the service reads (client/quarry_client/files.py); anything else would
// make it refuse the whole request (415), so such files are left out and said so.
const SUPPORTED = [".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".json", ".jsonl"];

const supported = (name) => SUPPORTED.some((suffix) => name.toLowerCase().endsWith(suffix));
const hidden = (relative) => relative.split("/").some((part) => part.startsWith("."));

export function render(view, ctx) {
  const life = lifetime();
  const collection = collectionInput("upload-collection", ctx.args[0]);
  const metadata = h("textarea", { id: "upload-metadata", rows: 2, placeholder: '{"team": "docs"}  (optional: added to every file\'s metadata)' });
  const fileInput = h("input", { type: "file", id: "file-input", multiple: true });
  const folderInput = h("input", { type: "file", id: "folder-input", multiple: true, webkitdirectory: true });
  const zone = h("div", { id: "drop-zone", tabindex: 0 }, "Drop files or a folder here");
  const status = h("section", { id: "upload-status" });

  const chosen = (input) => () => {
    const files = [...input.files].map((file) => ({ file, relative: file.webkitRelativePath || file.name }));
    input.value = "";
    send(files);
  };
  fileInput.addEventListener("change", chosen(fileInput));
  folderInput.addEventListener("change", chosen(folderInput));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    droppedFiles(event.dataTransfer).then(send, showProblem);
  });

  async function send(files) {
    const name = view.querySelector("#upload-collection").value.trim();
    const sent = files.filter((f) => !hidden(f.relative) && supported(f.file.name));
    const left = files.filter((f) => !hidden(f.relative) && !supported(f.file.name));
    const report = h("div", { class: "upload" });
    status.prepend(report);
    if (!name) {
      report.append(h("p", {}, "Name the collection to upload to first."));
      return;
    }
    if (left.length) {
      report.append(
        h("p", {}, "Not sent (a type the service does not read):"),
        h("ul", { class: "not-sent" }, left.map((f) => h("li", {}, f.relative))),
      );
    }
    if (!sent.length) {
      report.append(h("p", {}, "No file to send."));
      return;
    }
    const form = new FormData();
    for (const { file } of sent) form.append("files", file, file.name);
    if (metadata.value.trim()) form.append("metadata", metadata.value.trim());
    const answer = await attempt(() => call("POST", path("/api/v1/collections/{}/documents", name), { form }));
    if (!answer) {
      report.remove();
      return;
    }
    const outcome = h("div", { class: "upload-result" });
    report.append(
      h("h3", {}, `${sent.length} file${sent.length === 1 ? "" : "s"} to ${name}`),
      jobCard(answer.data, ctx, life, { onFinal: (job) => fill(outcome, summary(job)) }),
      outcome,
    );
  }

  fill(
    view,
    h("h2", {}, "Upload"),
    h("p", { id: "upload-not-allowed", hidden: ctx.scopes.write }, "This key has no write scope: it cannot upload."),
    needs(
      "write",
      ctx,
      h(
        "div",
        { id: "upload-form" },
      h("div", { class: "inline" }, field("Collection (created if absent)", collection), field("Metadata (JSON)", metadata)),
      zone,
      h("div", { class: "toolbar" }, field("Or choose files", fileInput), field("Or a folder", folderInput)),
        h("p", { class: "muted" }, `Read: ${SUPPORTED.join(" ")}. Other files are left out; hidden files too.`),
      ),
    ),
    status,
  );
  return () => life.end();
}

function summary(job) {
  const result = job.result || {};
  const failed = result.failed || [];
  return [
    h(
      "p",
      { class: "upload-counts" },
      `${result.documents ?? 0} documents, ${result.chunks ?? 0} chunks, ${result.skipped_duplicates ?? 0} duplicates skipped, ${failed.length} failed.`,
    ),
    failed.length
      ? h("ul", { class: "failed-files" }, failed.map((f) => h("li", {}, h("strong", {}, f.source), ": ", f.error)))
      : null,
    (result.same_text || []).length
      ? h("p", {}, "Same text as a stored document: ", result.same_text.map((s) => `${s.id} (as ${s.same_text_as})`).join(", "))
      : null,
  ];
}

// The files of a drop: each file, and every file inside each folder
// (recursively, through the File System entries API). The entries are read
// while the drop event lasts: the DataTransfer is emptied after it.
function droppedFiles(transfer) {
  const entries = [...(transfer.items || [])].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return Promise.resolve([...transfer.files].map((file) => ({ file, relative: file.name })));
  return Promise.all(entries.map((entry) => walk(entry, ""))).then((lists) => lists.flat());
}

async function walk(entry, prefix) {
  const relative = prefix + entry.name;
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, relative }];
  }
  const reader = entry.createReader();
  const children = [];
  // readEntries answers in batches until it answers none.
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  children.sort((a, b) => a.name.localeCompare(b.name));
  const nested = await Promise.all(children.map((child) => walk(child, `${relative}/`)));
  return nested.flat();
}
