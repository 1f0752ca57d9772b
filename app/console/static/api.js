// The console's only way to the service: the public /api/v1, with the key the
// person typed in. The key lives in sessionStorage (gone with the tab) and is
// sent only as an Authorization header: never in a URL, never logged.

import { fill, h } from "./dom.js";

const KEY_ITEM = "quarry.console.key";
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
// The client package's bounds on a poll hint (client/quarry_client/waiting.py).
const MIN_POLL_MS = 50;
const MAX_POLL_MS = 30000;
const FALLBACK_POLL_MS = 1000;

export const key = {
  get: () => sessionStorage.getItem(KEY_ITEM),
  set: (value) => sessionStorage.setItem(KEY_ITEM, value),
  forget: () => sessionStorage.removeItem(KEY_ITEM),
};

export const isFinal = (job) => FINAL.has(job.status);

export class ApiError extends Error {
  constructor(status, problem, headers) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.requestId = problem.request_id || headers?.get("X-Request-ID") || null;
    const retry = Number.parseFloat(headers?.get("Retry-After") ?? "");
    this.retryAfter = Number.isFinite(retry) ? retry : null;
  }
}

export function path(template, ...parts) {
  // Ids and names are opaque: each goes into the path as one encoded segment.
  let i = 0;
  return template.replace(/\{\}/g, () => encodeURIComponent(parts[i++]));
}

// One request. Answers {status, data, headers}; a refusal throws an ApiError
// carrying the problem body (detail, code, request_id, errors) and Retry-After.
export async function call(method, url, { json, form, query, headers = {} } = {}) {
  const secret = key.get();
  if (!secret) throw new ApiError(401, { detail: "Enter an API key first." });
  const sent = { Authorization: `Bearer ${secret}`, Accept: "application/json", ...headers };
  let body;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary
  }
  const search = query ? queryString(query) : "";
  let response;
  try {
    response = await fetch(url + search, {
      method,
      headers: sent,
      body,
      // Our own If-None-Match decides; the browser's cache must not answer
      // for the service. No cookies, and the key never follows a redirect.
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (error) {
    throw new ApiError(0, { title: "No answer", detail: `The service did not answer (${error.message}).` });
  }
  if (response.status === 304) return { status: 304, data: null, headers: response.headers };
  const data = await readBody(response);
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { detail: String(data || response.statusText) };
    problem.status ??= response.status;
    throw new ApiError(response.status, problem, response.headers);
  }
  return { status: response.status, data, headers: response.headers };
}

function queryString(query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

async function readBody(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// --- problems --------------------------------------------------------------

// Shows a refusal in the page's alert area: the problem's detail and
// request_id (what to quote to an operator), field errors, and for a 429 or
// 503 when a retry is worth making.
export function showProblem(error) {
  const area = document.getElementById("problem");
  if (!(error instanceof ApiError)) {
    console.error(error);
    error = new ApiError(0, { title: "Console error", detail: String(error?.message || error) });
  }
  const problem = error.problem;
  const heading = [error.status || null, problem.title].filter(Boolean).join(" ");
  fill(
    area,
    h("strong", { id: "problem-title" }, heading || "Error"),
    " ",
    h("span", { id: "problem-detail" }, problem.detail || ""),
    problem.code ? h("span", { class: "muted" }, " · code ", h("code", { id: "problem-code" }, problem.code)) : null,
    error.requestId
      ? h("span", { class: "muted" }, " · request id ", h("code", { id: "problem-request-id" }, error.requestId))
      : null,
    retryNote(error),
    Array.isArray(problem.errors) && problem.errors.length
      ? h(
          "ul",
          { id: "problem-errors" },
          problem.errors.map((e) => h("li", {}, h("code", {}, e.field), ": ", e.message)),
        )
      : null,
    h("button", { type: "button", id: "problem-dismiss", on: { click: clearProblem } }, "Dismiss"),
  );
  area.hidden = false;
}

function retryNote(error) {
  if (![429, 503].includes(error.status)) return null;
  if (error.retryAfter === null) return h("p", { id: "problem-retry" }, "Try again later.");
  const at = new Date(Date.now() + error.retryAfter * 1000).toLocaleTimeString();
  return h("p", { id: "problem-retry" }, `Retry after ${error.retryAfter} s (at ${at}).`);
}

export function clearProblem() {
  const area = document.getElementById("problem");
  area.hidden = true;
  area.replaceChildren();
}

// Runs an action, showing its refusal instead of throwing.
export async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    showProblem(error);
    return undefined;
  }
}

// --- lifetimes and polling ---------------------------------------------------

// What a page started (polls, timers), stopped together when the page goes.
export function lifetime() {
  const stops = new Set();
  return {
    add(stop) {
      stops.add(stop);
      return stop;
    },
    end() {
      for (const stop of stops) stop();
      stops.clear();
    },
  };
}

// Calls `tick` now and again after the delay it answers (ms; null: stop),
// only while the tab is visible: a hidden tab makes no requests, and
// polling starts again at once when it is shown.
export function whileVisible(tick) {
  let timer = null;
  let stopped = false;
  let waiting = false;
  async function run() {
    timer = null;
    if (stopped) return;
    if (document.visibilityState === "hidden") {
      waiting = true;
      return;
    }
    let delay = null;
    try {
      delay = await tick();
    } catch (error) {
      showProblem(error);
      delay = error instanceof ApiError && error.retryAfter !== null ? error.retryAfter * 1000 : null;
    }
    if (!stopped && delay !== null && delay !== undefined) timer = setTimeout(run, delay);
  }
  function onVisibility() {
    if (document.visibilityState === "visible" && waiting && !stopped) {
      waiting = false;
      run();
    }
  }
  document.addEventListener("visibilitychange", onVisibility);
  run();
  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisibility);
  };
}

function hintMs(job, headers) {
  if (typeof job?.poll_after_ms === "number") return job.poll_after_ms;
  const retry = Number.parseFloat(headers?.get("Retry-After") ?? "");
  return Number.isFinite(retry) ? retry * 1000 : FALLBACK_POLL_MS;
}

// Follows a job until it is final, as API.md asks: each poll after the job's
// poll_after_ms, conditional on its ETag (a 304 is free and keeps the job; its
// Retry-After is the new hint), a 429 or 503 after its Retry-After. Calls
// onUpdate(job) with each new version; answers a function that stops it.
export function watchJob(job, onUpdate) {
  let etag = null;
  let current = job;
  let first = true;
  return whileVisible(async () => {
    if (first) {
      first = false;
      if (isFinal(current)) return null;
      return clamp(hintMs(current));
    }
    const headers = etag ? { "If-None-Match": etag } : {};
    let answer;
    try {
      answer = await call("GET", path("/api/v1/jobs/{}", current.id), { headers });
    } catch (error) {
      if (error.retryAfter !== null) return clamp(error.retryAfter * 1000);
      if (error.status === 0) return FALLBACK_POLL_MS * 2; // no answer: try again, calmly
      showProblem(error);
      return null;
    }
    if (answer.status === 304) {
      current = { ...current, poll_after_ms: null };
      return clamp(hintMs(null, answer.headers));
    }
    etag = answer.headers.get("ETag");
    current = answer.data;
    onUpdate(current);
    return isFinal(current) ? null : clamp(hintMs(current, answer.headers));
  });
}

function clamp(ms) {
  return Math.min(Math.max(ms, MIN_POLL_MS), MAX_POLL_MS);
}

// Resolves with the job once final (for callers that only need the end).
export function finished(job, onUpdate = () => {}, life = null) {
  if (isFinal(job)) return Promise.resolve(job);
  return new Promise((resolve) => {
    const stop = watchJob(job, (next) => {
      onUpdate(next);
      if (isFinal(next)) resolve(next);
    });
    life?.add(stop);
  });
}
