// DOM helpers. No framework, no build step, nothing from the internet. Every piece of
// text reaches the page through textContent (el() below), never through innerHTML, so
// text from the hub is always shown as text.

/** Creates an element: el("div", {class: "x", dataset: {id}}, "text", child, ...). */
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "style") Object.assign(e.style, v); // CSSOM: allowed by the pages' CSP
    else if (k === "value") e.value = v;
    else if (k === "checked" || k === "disabled" || k === "selected" || k === "open") e[k] = !!v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** The element with this id. */
export const byId = (id) => document.getElementById(id);

/** Replaces the children of an element (or the element with this id). */
export function fill(target, ...children) {
  const e = typeof target === "string" ? byId(target) : target;
  if (e) e.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

/**
 * One listener on `root` for every element inside it that has `data-action`: clicks
 * (and `change` on selects and checkboxes) call `actions[name](element, event)`.
 */
export function delegate(root, actions) {
  const run = (ev) => {
    const t = ev.target.closest("[data-action]");
    if (!t || !root.contains(t)) return;
    const f = actions[t.dataset.action];
    if (!f) return;
    const isField = t.matches("select, input");
    if ((ev.type === "click") === isField) return; // fields act on change, buttons on click
    f(t, ev);
  };
  root.addEventListener("click", run);
  root.addEventListener("change", run);
}

/** The named values of a form as an object (checkbox groups as arrays). */
export function formValues(form) {
  const out = {};
  for (const e of form.elements) {
    if (!e.name) continue;
    if (e.type === "checkbox") {
      if (form.querySelectorAll(`[name="${e.name}"]`).length > 1) {
        out[e.name] = out[e.name] || [];
        if (e.checked) out[e.name].push(e.value);
      } else out[e.name] = e.checked;
    } else out[e.name] = e.value;
  }
  return out;
}
