// The console's shell: the key, what it may do, and which page shows.

import { ApiError, call, clearProblem, key, showProblem } from "./api.js";
import * as collections from "./collections.js";
import * as documents from "./documents.js";
import * as jobs from "./jobs.js";
import * as keys from "./keys.js";
import * as search from "./search.js";
import * as upload from "./upload.js";
import * as webhooks from "./webhooks.js";

// Keys are qk_ and 12 hex digits (the prefix lists show), then the secret.
const KEY_PREFIX_LENGTH = 15;

const PAGES = { collections, upload, search, jobs, documents, webhooks, keys };

const ctx = { scopes: { read: false, write: false, admin: false } };
let leave = null; // stops what the current page started

const $ = (id) => document.getElementById(id);

// Which scopes the key has, by asking the API for things that change nothing:
// cancelling a job that does not exist is 404 with `write` and 403 without;
// listing keys is 200 with `admin` and 403 without. A key the API refuses
// (401) is forgotten at once.
async function probeScopes() {
  const [read, write, admin] = await Promise.all([
    allowed(() => call("GET", "/api/v1/pipelines")),
    allowed(() => call("POST", "/api/v1/jobs/console-scope-check/cancel")),
    allowed(() => call("GET", "/api/v1/keys", { query: { limit: 1 } })),
  ]);
  return { read, write, admin };
}

// 403: the key lacks the scope. 401 (no such key, revoked, expired) is
// thrown: no scope is worth probing. Anything else (the 404 of the cancel
// probe, a 429, an outage) offers the controls, and the API decides.
async function allowed(request) {
  try {
    await request();
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
    return !(error instanceof ApiError && error.status === 403);
  }
}

async function useKey() {
  try {
    ctx.scopes = await probeScopes();
  } catch (error) {
    showProblem(error);
    if (error instanceof ApiError && error.status === 401) forgetKey({ keepProblem: true });
    return;
  }
  document.body.dataset.scopes = Object.keys(ctx.scopes).filter((s) => ctx.scopes[s]).join(" ");
  const secret = key.get();
  // The visible prefix only (as key lists show it), never the secret part.
  $("key-label").textContent = `Key ${secret.slice(0, KEY_PREFIX_LENGTH)}… (${document.body.dataset.scopes})`;
  $("key-form").hidden = true;
  $("key-status").hidden = false;
  $("nav").hidden = false;
  $("nav-keys").hidden = !ctx.scopes.admin;
  route();
}

function forgetKey({ keepProblem = false } = {}) {
  key.forget();
  leave?.();
  leave = null;
  ctx.scopes = { read: false, write: false, admin: false };
  delete document.body.dataset.scopes;
  if (!keepProblem) clearProblem();
  $("key-input").value = "";
  $("key-form").hidden = false;
  $("key-status").hidden = true;
  $("nav").hidden = true;
  $("view").replaceChildren($("intro-template").content.cloneNode(true));
  $("key-input").focus();
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  try {
    return parts.map(decodeURIComponent);
  } catch {
    return [];
  }
}

function route() {
  if (!key.get() || $("nav").hidden) return;
  const [name, ...args] = parseHash();
  const page = PAGES[name] && (name !== "keys" || ctx.scopes.admin) ? name : "collections";
  for (const link of $("nav").querySelectorAll("a")) {
    link.classList.toggle("current", link.getAttribute("href") === `#/${page}`);
  }
  leave?.();
  clearProblem();
  const view = $("view");
  view.replaceChildren();
  view.dataset.page = page;
  leave = PAGES[page].render(view, { ...ctx, args }) || null;
}

function start() {
  // The intro is kept to put back when the key is forgotten.
  const template = document.createElement("template");
  template.id = "intro-template";
  template.content.append($("intro").cloneNode(true));
  document.body.append(template);

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key-input").value.trim();
    if (!value) return;
    key.set(value);
    $("key-input").value = "";
    useKey();
  });
  $("forget-key").addEventListener("click", () => forgetKey());
  window.addEventListener("hashchange", route);
  if (key.get()) useKey();
  document.documentElement.dataset.ready = "yes"; // the modules loaded and ran
}

start();
