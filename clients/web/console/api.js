// The console's link to the hub: the HTTP API (token in the Authorization header only)
// and the live stream `/v1/console/events`, read with fetch so that the token never
// goes into a URL. Panels load through `panelLoad`, which shows a failure in that panel
// only and retries it, so one refused request never blanks the page.

import { backoff } from "../lib/util.js";
import { errorText, t } from "../lib/i18n.js";

let token = null;
let onUnauthorized = () => {};

export function setToken(tok, unauthorized) {
  token = tok;
  if (unauthorized) onUnauthorized = unauthorized;
}

/** An API failure: the protocol's error code and the hub's message. */
export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(errorText(code, message));
    this.status = status;
    this.code = code;
    this.hubMessage = message;
  }
}

/** A request with the token; a network failure as an ApiFailure. */
async function send(path, init = {}) {
  try {
    return await fetch(path, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers || {}) } });
  } catch (e) {
    throw new ApiFailure(0, "network", String(e.message || e));
  }
}

export async function api(method, path, body) {
  const json = body ? { headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) } : {};
  return answer(await send(path, { method, ...json }));
}

/** The JSON of an answer, or its refusal as an ApiFailure. */
async function answer(res) {
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {}
  if (!res.ok) {
    const e = (data && data.error) || { code: `http_${res.status}`, message: text || res.statusText };
    if (res.status === 401) onUnauthorized(errorText(e.code, e.message));
    throw new ApiFailure(res.status, e.code, e.message);
  }
  return data;
}

/** A body that is not JSON (a CAP file), answered in JSON. */
export async function apiText(method, path, text, type) {
  return answer(await send(path, { method, headers: { "Content-Type": type }, body: text }));
}

/** A download (a CAP export) as a Blob. */
export async function apiBlob(path) {
  const res = await send(path);
  if (!res.ok) await answer(res);
  return res.blob();
}

/**
 * Runs `load` for the panel with this id: on failure the panel's `.panel-error` says
 * what went wrong, with a button to retry now, and it is retried with backoff until it
 * works; on success the message goes away. Returns a function that runs it again.
 */
export function panelLoad(panelId, load) {
  let attempt = 0;
  let timer = null;
  let running = false;
  let again = false;
  const box = () => document.querySelector(`#${panelId} > .panel-error`);
  // One load at a time: a call while one runs makes one more run after it, so an
  // older answer never lands after a newer one.
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    try {
      await load();
      attempt = 0;
      const b = box();
      if (b) b.hidden = true;
      document.getElementById(panelId)?.classList.remove("has-error");
    } catch (e) {
      if (!token) return;
      const wait = backoff(attempt++, 1000, 30000);
      const b = box();
      if (b) {
        b.hidden = false;
        b.replaceChildren(
          document.createTextNode(t("panel.failed", { why: e.message, s: Math.ceil(wait / 1000) })),
          " "
        );
        const retry = document.createElement("button");
        retry.type = "button";
        retry.className = "link";
        retry.textContent = t("panel.retry");
        retry.addEventListener("click", run);
        b.append(retry);
      }
      document.getElementById(panelId)?.classList.add("has-error");
      timer = setTimeout(run, wait);
    } finally {
      running = false;
      if (again) {
        again = false;
        run();
      }
    }
  };
  return run;
}

/** How long the live stream may be silent before it is given up. */
const SILENT_MS = 40000;

/**
 * Reads the live stream until `signal` aborts or the stream ends; calls
 * `onEvent(name, data)` per event. Throws an ApiFailure when the hub refuses it.
 */
export async function readStream(signal, onEvent) {
  const res = await fetch("/v1/console/events", {
    headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
    signal,
  });
  if (!res.ok) {
    let e = { code: `http_${res.status}`, message: res.statusText };
    try {
      e = (await res.json()).error || e;
    } catch (_) {}
    if (res.status === 401) onUnauthorized(errorText(e.code, e.message));
    throw new ApiFailure(res.status, e.code, e.message);
  }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  // The hub sends a keep-alive every 15 s: a stream silent for longer is dead even if
  // its connection looks open, and is given up so that it reconnects.
  let watchdog;
  let silent = false;
  const quiet = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      silent = true;
      reader.cancel();
    }, SILENT_MS);
  };
  quiet();
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } finally {
      clearTimeout(watchdog);
    }
    const { value, done } = chunk;
    if (done) {
      if (silent) throw new ApiFailure(0, "network", t("conn.silent"));
      return;
    }
    quiet();
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join("\n"));
      } catch (_) {
        continue;
      }
      onEvent(name, parsed);
    }
  }
}
