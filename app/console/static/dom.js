// Building the page. Everything the API sends (names, texts, metadata, error
// messages) reaches the document through createTextNode or textContent: no
// string is ever parsed as HTML. The page's Content-Security-Policy enforces
// Trusted Types, so an innerHTML assignment would throw rather than render.

// Properties set as properties (booleans and values); everything else is an attribute.
const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "multiple", "selected", "required"]);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "data") {
      Object.assign(el.dataset, value);
    } else if (name === "href") {
      el.setAttribute("href", internalHref(value));
    } else if (PROPERTIES.has(name)) {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

// Links stay inside the console: a URL from the API (a webhook's, say) is
// shown as text, never made a link someone could be lured into clicking.
function internalHref(value) {
  const href = String(value);
  if (!href.startsWith("#/")) throw new Error(`not a console link: ${href}`);
  return href;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function jsonBlock(value, attrs = {}) {
  return h("pre", { class: "json", ...attrs }, JSON.stringify(value, null, 2));
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

// `rows`: an array of <tr>, or the <tbody> a page keeps to refill.
export function table(id, headings, rows) {
  const body = rows instanceof HTMLTableSectionElement ? rows : h("tbody", {}, rows);
  return h("table", { id }, h("thead", {}, h("tr", {}, headings.map((heading) => h("th", { scope: "col" }, heading)))), body);
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
}

// Write and admin controls: rendered hidden for a key that lacks the scope,
// so the page offers only what the key may do; the API is what refuses.
export function needs(scope, ctx, el) {
  el.dataset.needs = scope;
  if (!ctx.scopes[scope]) el.hidden = true;
  return el;
}

// A confirmation in the page itself (not window.confirm, which blocks the
// page's polling while it is open).
export function confirmInline(anchor, message, onYes) {
  const box = h(
    "span",
    { class: "confirm", role: "group" },
    message,
    " ",
    h("button", { type: "button", class: "danger confirm-yes", on: { click: () => done(true) } }, "Yes"),
    h("button", { type: "button", class: "confirm-no", on: { click: () => done(false) } }, "No"),
  );
  anchor.hidden = true;
  anchor.after(box);
  box.querySelector(".confirm-no").focus();
  function done(yes) {
    box.remove();
    anchor.hidden = false;
    if (yes) onYes();
  }
}

// A form the page handles itself: the browser never submits it (the policy's
// form-action 'none' would refuse that, and a submitted form could put what
// was typed, a key say, into a URL) nor validates it (the API's refusals are
// shown instead). `children` are its fields and buttons.
export function scriptForm(attrs, children, onSubmit) {
  const submit = (event) => {
    event.preventDefault();
    onSubmit();
  };
  return h("form", { novalidate: true, ...attrs, on: { submit } }, ...children);
}

export function button(label, onClick, attrs = {}) {
  return h("button", { type: "button", ...attrs, on: { click: onClick } }, label);
}

// Options of a <select>: [value, label] pairs, the current one selected.
export function options(pairs, current) {
  return pairs.map(([value, label]) => h("option", { value, selected: value === current }, label));
}
