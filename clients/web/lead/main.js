// The lead's phone page: sign-in, the session, and the views of activations, tasks and
// the report form. Everything the person does is answered on the page in words.

import { byId, delegate, el, fill, formValues } from "../lib/dom.js";
import { errorText, initI18n, onLanguage, t, term } from "../lib/i18n.js";
import { createStore } from "../lib/store.js";
import { claimsOf, loadLimits, restartSignedOut, signOutMessage, takeToken, wireHeader } from "../lib/util.js";
import { createSession } from "./session.js";
import { addAlert, renderIncidents, renderReportState, renderTasks, tick } from "./views.js";

const store = createStore({
  incidents: new Map(), // id -> {incident, me}
  tasks: new Map(),
  notes: new Map(), // key -> {state, what, why}
  assignments: [],
  limits: null,
  kinds: [],
  lang: null,
  kindName: (k) => k,
});
const S = store.state;
let session = null;
let conn = { state: "offline", info: {} };
const whatOf = new Map(); // answer key -> () => the words for what was sent (in the language shown)

function showConn() {
  const c = byId("conn");
  c.removeAttribute("data-t"); // the badge is the page's to word from now on
  const { state, info } = conn;
  c.className = `conn ${state === "online" ? "online" : state === "reconnecting" || state === "connecting" ? state : "offline"}`;
  document.body.dataset.conn = state === "online" || state === "reconnecting" || state === "connecting" ? state : "offline";
  c.textContent =
    state === "reconnecting" && info.s
      ? t("conn.reconnecting_in", { s: info.s })
      : state === "elsewhere"
        ? t("lead.elsewhere")
        : t(`conn.${state === "refused" ? "offline" : state}`);
}

function signIn(token) {
  sessionStorage.setItem("gridcast.lead", token);
  const claims = claimsOf(token);
  fill("who", claims ? claims.sub : "");
  byId("signin").hidden = true;
  byId("app").hidden = false;
  session = createSession({
    token,
    onFrame,
    onState: (state, info) => {
      conn = { state, info };
      showConn();
      if (state === "refused") signOut(t(info.code === 4401 ? "lead.refused_token" : "lead.refused_lead"));
    },
    onAnswer: (key, state, f, sent) => {
      S.notes.set(key, { state, what: whatOf.get(key) || (() => ""), why: f ? () => errorText(f.code, f.message) : () => "" });
      if (key === "report" && state === "ok") byId("report-form").reset();
      // The hub sends the new `me` to the lead's other devices only: this one has its ok.
      if (state === "ok" && sent && sent.type === "ack") ownAnswer(sent.incident, sent.response);
      store.touch("notes");
    },
  });
  session.start();
}

function signOut(message) {
  if (session) {
    session.stop();
    session = null;
    restartSignedOut("gridcast.lead", message);
    return;
  }
  showSignIn(message);
}

function showSignIn(message) {
  byId("app").hidden = true;
  byId("signin").hidden = false;
  fill("signin-error", message || "");
  conn = { state: "offline", info: {} };
  showConn();
}

function onFrame(f) {
  switch (f.type) {
    case "welcome":
      fill("who", f.lead);
      store.set({ assignments: f.assignments || [] });
      break;
    case "incident":
      onIncident(f.incident, f.me);
      break;
    case "task": {
      const cur = S.tasks.get(f.task.id);
      if (!cur || f.task.rev >= cur.rev) S.tasks.set(f.task.id, f.task);
      store.touch("tasks");
      break;
    }
    case "escalation":
      addAlert(t("lead.escalation", { step: f.step, lead: f.lead, incident: f.incident, grid: f.grid }) + (f.drill ? ` (${t("drill.badge")})` : ""));
      break;
    case "error":
      addAlert(errorText(f.code, f.message));
      break;
    default:
      break;
  }
}

/** This device's ack was recorded: its own status follows at once. */
function ownAnswer(id, response) {
  const cur = S.incidents.get(id);
  if (!cur || !cur.me) return;
  S.incidents.set(id, { ...cur, me: { ...cur.me, status: response === "accept" ? "accepted" : "declined" } });
  store.touch("incidents");
}

function onIncident(incident, me) {
  const cur = S.incidents.get(incident.id);
  if (cur && incident.rev < cur.incident.rev) return; // older view
  const fresh = !cur;
  S.incidents.set(incident.id, { incident, me: me || (cur && cur.me) || null });
  store.touch("incidents");
  if (incident.state === "active") {
    session.send({ type: "receipt", incident: incident.id, rev: incident.rev });
    if (fresh && (incident.level === "I" || incident.level === "II")) alarm();
  }
}

/** A sound and a vibration for a new level I/II activation, where the browser allows. */
function alarm() {
  try {
    if (navigator.vibrate) navigator.vibrate([400, 150, 400, 150, 400]);
  } catch (_) {}
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const osc = ctx.createOscillator();
    osc.frequency.value = 880;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.8);
  } catch (_) {}
}

function request(frame, key, what) {
  whatOf.set(key, what);
  session.request(frame, key);
}

const noteOf = (button, sel) => {
  const v = button.closest(".card").querySelector(sel).value.trim();
  return v || undefined;
};

delegate(byId("incidents"), {
  accept: (b) => request({ type: "ack", incident: b.dataset.id, response: "accept", note: noteOf(b, ".ack-note") }, `ack:${b.dataset.id}`, () => t("lead.accept")),
  decline: (b) => request({ type: "ack", incident: b.dataset.id, response: "decline", note: noteOf(b, ".ack-note") }, `ack:${b.dataset.id}`, () => t("lead.decline")),
  checkin: (b) => checkin(b.dataset.id, noteOf(b, ".ack-note")),
});

/**
 * On-site check-in (签到): the browser's position (W3C geolocation reports WGS 84, the
 * hub's default datum) with the note typed, sent like an ack (resent until recorded).
 */
function checkin(id, note) {
  const key = `checkin:${id}`;
  const what = () => t("lead.checkin");
  const fail = (why) => {
    whatOf.set(key, what);
    S.notes.set(key, { state: "refused", what, why: () => why });
    store.touch("notes");
  };
  if (!navigator.geolocation) return fail(t("lead.no_position"));
  navigator.geolocation.getCurrentPosition(
    (p) => request({ type: "checkin", incident: id, location: { lat: p.coords.latitude, lon: p.coords.longitude }, note }, key, what),
    (e) => fail(t("lead.no_position_why", { why: e.message || String(e.code) })),
    { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 }
  );
}
const taskAction = (status) => (b) =>
  request({ type: "task_update", task: b.dataset.id, status, note: noteOf(b, ".task-note") }, `task:${b.dataset.id}`, () => t("task.what", { status: term("status", status) }));
delegate(byId("tasks"), {
  "task-accepted": taskAction("accepted"),
  "task-done": taskAction("done"),
  "task-failed": taskAction("failed"),
});

store.subscribe(["incidents", "notes", "lang", "limits"], renderIncidents);
store.subscribe(["tasks", "notes", "lang", "limits"], renderTasks);
store.subscribe(["notes", "lang"], renderReportState);
store.subscribe(["assignments", "lang"], (s) => {
  // Rebuilt on every welcome and language switch: the grid picked stays picked.
  const sel = byId("report-grid");
  const picked = sel.value;
  fill(sel, s.assignments.map((a) => el("option", { value: a.grid }, `${a.grid} (${t(`roles.${a.role}`)})`)));
  if (s.assignments.some((a) => a.grid === picked)) sel.value = picked;
});

byId("report-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = formValues(e.target);
  request({ type: "report", grid: v.grid, category: v.category, title: v.title.trim(), detail: v.detail.trim() }, "report", () => t("report.what"));
});
wireHeader(signIn, signOut);
onLanguage((lang) => {
  showConn();
  store.set({ lang });
});
setInterval(tick, 1000);

initI18n();
showConn();
loadLimits((limits) => store.set({ limits }));
const saved = takeToken("gridcast.lead");
if (saved) signIn(saved);
else showSignIn(signOutMessage("gridcast.lead"));
