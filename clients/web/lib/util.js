// Small helpers both pages use: tokens, backoff, throttling, the header's controls.

import { setLanguage } from "./i18n.js";

/** The claims of a JWT (not verified: for display only; the hub verifies). */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
  } catch (_) {
    return null;
  }
}

/** The token: from `#token=` (then removed from the address bar) or sessionStorage. */
export function takeToken(key) {
  const m = location.hash.match(/[#&]token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(key, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(key);
}

/** Reconnect delay with full jitter: 0.5–1.5 × min(max, base × 2^attempt). */
export function backoff(attempt, base = 500, max = 15000) {
  return Math.min(max, base * 2 ** attempt) * (0.5 + Math.random());
}

/**
 * A function that runs `f` at most once per `ms`: a call while one runs or within `ms`
 * of the last start is folded into one more run afterwards.
 */
export function throttled(ms, f) {
  let busy = false;
  let again = false;
  const run = async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      await f();
    } catch (_) {
      // the caller's panel shows its own errors
    } finally {
      setTimeout(() => {
        busy = false;
        if (again) {
          again = false;
          run();
        }
      }, ms);
    }
  };
  return run;
}

/**
 * The hub's field limits (`GET /v1/limits`, no token needed) on every field marked
 * `data-limit`, so that a page never offers more than the hub takes; retried until
 * read. `done(limits)` gets them for fields built later.
 */
export async function loadLimits(done, tries = 0) {
  try {
    const res = await fetch("/v1/limits");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const limits = await res.json();
    for (const e of document.querySelectorAll("[data-limit]")) {
      const n = limits[e.dataset.limit];
      if (typeof n === "number") e.maxLength = n;
    }
    for (const e of document.querySelectorAll("[data-limit-range]")) {
      const r = limits[e.dataset.limitRange];
      if (r) Object.assign(e, { min: r.min, max: r.max });
    }
    done(limits);
  } catch (_) {
    setTimeout(() => loadLimits(done, tries + 1), backoff(tries, 1000, 30000));
  }
}

/** The sign-in form, the sign-out button and the language switch of both pages. */
export function wireHeader(signIn, signOut) {
  document.getElementById("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const tok = document.getElementById("token").value.trim();
    if (tok) signIn(tok);
  });
  document.getElementById("signout").addEventListener("click", () => signOut());
  document.getElementById("lang").addEventListener("change", (e) => setLanguage(e.target.value));
}

/**
 * Ends a signed-in page: forgets the token and starts the page afresh, so that nothing
 * of the last person's session (incidents, notes, listeners) stays in memory; `message`
 * is shown on the sign-in form after the reload.
 */
export function restartSignedOut(key, message) {
  sessionStorage.removeItem(key);
  if (message) sessionStorage.setItem(`${key}.signout`, message);
  location.reload();
}

/** The message a restart left for the sign-in form (read once). */
export function signOutMessage(key) {
  const m = sessionStorage.getItem(`${key}.signout`) || "";
  sessionStorage.removeItem(`${key}.signout`);
  return m;
}
