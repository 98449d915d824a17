// The command-center console: sign-in, the live stream, and the panels. State lives in
// one store; each panel module renders its own region when its slices change. On
// `lagged` and after every reconnect, everything shown is read again, so no escalation
// or report can vanish from an operator's screen.

import { byId, fill } from "../lib/dom.js";
import { initI18n, onLanguage, t } from "../lib/i18n.js";
import { createStore } from "../lib/store.js";
import { backoff, claimsOf, loadLimits, restartSignedOut, signOutMessage, takeToken, wireHeader } from "../lib/util.js";
import { api, readStream, setToken } from "./api.js";
import * as approvals from "./approvals.js";
import * as detail from "./detail.js";
import * as escalations from "./escalations.js";
import * as incidents from "./incidents.js";
import * as issue from "./issue.js";
import * as reports from "./reports.js";
import * as tree from "./tree.js";

const store = createStore({
  claims: null,
  conn: { state: "offline", text: "" },
  online: null,
  limits: null,
  kinds: [],
  incidents: new Map(),
  selected: null,
  escalations: [],
  reports: [],
  approvals: [],
  tree: null,
  lang: null,
});

const panels = [tree, incidents, detail, approvals, escalations, reports, issue];
let stream = null;
let attempt = 0;
let signedIn = false;

let connShown = { state: "offline", key: "conn.offline", vars: {} };

/** The connection badge: its state and what it says (said again in a new language). */
function setConn(state, key, vars = {}) {
  connShown = { state, key, vars };
  const c = byId("conn");
  c.removeAttribute("data-t"); // the badge is the page's to word from now on
  c.className = `conn ${state}`;
  c.textContent = t(key, vars);
  document.body.dataset.conn = state;
}

/** A line under the header that says what the console did by itself. */
function notice(text) {
  const n = byId("notice");
  n.textContent = text;
  n.hidden = false;
  n.dataset.at = String(Date.now());
}

let loadedOnce = false;

/**
 * Reads again everything the console shows: on every `hello` (the first one included:
 * what the stream feeds is read once the stream is subscribed, so no event falls
 * between the two), on `lagged`, and once if the stream cannot be opened at all.
 */
function refreshAll() {
  loadedOnce = true;
  for (const p of panels) if (p.refresh) p.refresh();
}

async function signIn(token) {
  const claims = claimsOf(token);
  signedIn = true;
  sessionStorage.setItem("gridcast.console", token);
  setToken(token, signOut);
  byId("signin").hidden = true;
  byId("app").hidden = false;
  byId("signout").hidden = false;
  store.set({ claims });
  showWho();
  for (const p of panels) p.start(store);
  openStream();
}

function showWho() {
  const c = store.state.claims || {};
  fill("who", t("who", { sub: c.sub || "?", role: t(`op_role.${c.role}`), scope: c.scope ? t("who.scope", { scope: c.scope }) : t("who.city") }));
}

function signOut(message) {
  if (signedIn) {
    signedIn = false;
    if (stream) stream.abort();
    stream = null;
    restartSignedOut("gridcast.console", message);
    return;
  }
  showSignIn(message);
}

function showSignIn(message) {
  setToken(null);
  byId("app").hidden = true;
  byId("signout").hidden = true;
  byId("signin").hidden = false;
  fill("signin-error", message || "");
  setConn("offline", "conn.offline");
}

async function openStream() {
  const ctrl = new AbortController();
  stream = ctrl;
  setConn(attempt ? "reconnecting" : "connecting", attempt ? "conn.reconnecting" : "conn.connecting");
  let why = t("conn.ended");
  try {
    await readStream(ctrl.signal, onEvent);
  } catch (e) {
    if (ctrl.signal.aborted) return;
    why = e.message || String(e);
  }
  if (stream !== ctrl || !signedIn) return;
  if (!loadedOnce) refreshAll(); // the page shows what it can without the stream
  const wait = backoff(attempt++);
  setConn("reconnecting", "conn.retry_in", { why, s: Math.ceil(wait / 1000) });
  setTimeout(() => signedIn && stream === ctrl && openStream(), wait);
}

let hellos = 0;
function onEvent(name, d) {
  switch (name) {
    case "hello":
      setConn("online", "conn.live", { node: d.node });
      if (typeof d.online === "number") store.set({ online: d.online });
      // Whatever changed before this stream began (or while it was down) is read now.
      if (hellos++ > 0) notice(t("notice.reconnected"));
      attempt = 0;
      refreshAll();
      break;
    case "lagged":
      notice(t("notice.lagged", { n: d.skipped }));
      refreshAll();
      break;
    case "incident":
      incidents.onIncident(d);
      break;
    case "progress":
      incidents.onProgress(d);
      detail.onProgress(d);
      break;
    case "presence":
      if (typeof d.online === "number" && !(store.state.claims || {}).scope) store.set({ online: d.online });
      tree.onPresence(d);
      break;
    case "escalation":
      escalations.onEscalation(d);
      detail.onChange(d.incident);
      break;
    case "report":
      reports.onReport(d.report || d);
      break;
    case "approval":
    case "approval_overridden":
      approvals.onApproval(d);
      break;
    case "checkin":
      detail.onCheckin(d.incident);
      break;
    default:
      break;
  }
}

store.subscribe(["online"], (s) => fill("online", s.online === null ? "" : t("online.count", { n: s.online })));

wireHeader(signIn, signOut);
onLanguage((lang) => {
  showWho();
  setConn(connShown.state, connShown.key, connShown.vars);
  store.set({ lang });
});

initI18n();
loadLimits((limits) => store.set({ limits }));
const saved = takeToken("gridcast.console");
if (saved) signIn(saved);
else showSignIn(signOutMessage("gridcast.console"));
