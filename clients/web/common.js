// gridcast web pages: shared helpers. No framework, no build step, nothing from the
// internet. Every piece of text reaches the page through textContent (el() below),
// never through innerHTML, so text from the hub is always shown as text.
"use strict";

/** Creates an element: el("div", {class: "x", onclick: f}, "text", child, ...). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "style") Object.assign(e.style, v); // CSSOM: allowed by the pages' CSP
    else if (k === "value") e.value = v;
    else if (k === "checked" || k === "disabled" || k === "selected") e[k] = !!v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** Replaces the children of the element with this id. */
function fill(id, ...children) {
  const e = document.getElementById(id);
  if (e) e.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return e;
}

/** The claims of a JWT (not verified: for display only; the hub verifies). */
function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
  } catch (_) {
    return null;
  }
}

/** The token: from `#token=` (then removed from the address bar) or sessionStorage. */
function takeToken(key) {
  const m = location.hash.match(/[#&]token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(key, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(key);
}

/** Readable labels. */
const LABELS = {
  level: { I: "Level I", II: "Level II", III: "Level III", IV: "Level IV" },
  category: {
    natural: "Natural disaster",
    accident: "Accident",
    public_health: "Public health",
    social_safety: "Social safety",
  },
  status: {
    pending: "pending",
    delivered: "delivered",
    accepted: "accepted",
    declined: "cannot come",
    open: "open",
    done: "done",
    failed: "failed",
  },
  role: {
    grid_lead: "grid lead",
    full_time: "full-time member",
    part_time: "part-time member",
    instructor: "instructor",
    micro_lead: "micro-grid lead",
  },
};
const label = (kind, v) => (LABELS[kind] && LABELS[kind][v]) || String(v);

/** "4 min 05 s" / "overdue 12 s" until an RFC 3339 instant. */
function timeLeft(iso, now) {
  const ms = Date.parse(iso) - (now || Date.now());
  const s = Math.round(Math.abs(ms) / 1000);
  const txt = s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
  return ms >= 0 ? `${txt} left` : `overdue ${txt}`;
}

/** Local time of an RFC 3339 instant. */
function clock(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleTimeString();
}

/** Reconnect delay with full jitter: 0.5–1.5 × min(max, base × 2^attempt). */
function backoff(attempt, base = 500, max = 15000) {
  return Math.min(max, base * 2 ** attempt) * (0.5 + Math.random());
}

/** The badges every incident shows: level, category, and DRILL when it is one. */
function badges(incident) {
  return [
    el("span", { class: `badge level-${incident.level}` }, label("level", incident.level)),
    el("span", { class: "badge" }, label("category", incident.category)),
    incident.drill ? el("span", { class: "badge drill", title: "exercise, not a real emergency" }, "DRILL") : null,
    incident.state === "closed" ? el("span", { class: "badge closed" }, "closed") : null,
  ];
}
