// The lead's phone page: one WebSocket session as in the protocol contract (hello,
// welcome, sync, synced, live frames), answers that are resent until the hub says
// `ok`, and automatic reconnect with jittered backoff and resync.
"use strict";

const S = {
  token: null,
  ws: null,
  lead: null,
  assignments: [],
  heartbeat: null,
  attempt: 0,
  retry: null,
  incidents: new Map(), // id -> {incident, me}
  tasks: new Map(), // id -> task
  pending: new Map(), // ref -> {frame, what, key}
  notes: new Map(), // key -> message shown under an item (errors, sent state)
  seq: 0,
  synced: false,
};

function setConn(state, text) {
  const c = document.getElementById("conn");
  c.className = `conn ${state}`;
  c.textContent = text || state;
  document.body.dataset.conn = state;
}

function signIn(token) {
  S.token = token;
  sessionStorage.setItem("gridcast.lead", token);
  const claims = claimsOf(token);
  fill("who", claims ? claims.sub : "");
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  connect();
}

function signOut(message) {
  sessionStorage.removeItem("gridcast.lead");
  S.token = null;
  clearTimeout(S.retry);
  if (S.ws) S.ws.close();
  S.ws = null;
  document.getElementById("app").hidden = true;
  document.getElementById("signin").hidden = false;
  fill("signin-error", message || "");
  setConn("offline");
}

function connect() {
  clearTimeout(S.retry);
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/lead/ws`;
  setConn(S.attempt ? "reconnecting" : "connecting", S.attempt ? "reconnecting…" : "connecting…");
  S.synced = false;
  const ws = new WebSocket(url);
  S.ws = ws;
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: "hello", token: S.token, client: { name: "gridcast-lead-page", version: "1" } }));
  };
  ws.onmessage = (m) => {
    let f;
    try {
      f = JSON.parse(m.data);
    } catch (_) {
      return;
    }
    onFrame(f);
  };
  ws.onclose = (e) => {
    if (S.ws !== ws) return;
    clearInterval(S.heartbeat);
    S.ws = null;
    if (e.code === 4401 || e.code === 4403) {
      signOut(e.code === 4401 ? "The token was refused (expired or invalid)." : "This lead is not in the registry.");
      return;
    }
    if (!S.token) return;
    if (e.code === 4409) {
      // The lead opened more sessions elsewhere and this, the oldest, was closed: coming
      // back at once would close another device's session in turn.
      setConn("offline", "opened on another device; reload this page to use it here");
      return;
    }
    const wait = backoff(S.attempt++);
    setConn("reconnecting", `reconnecting in ${Math.ceil(wait / 1000)} s…`);
    S.retry = setTimeout(connect, wait);
  };
}

function send(frame) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(frame));
}

/** Sends a frame that must be answered `ok`; resent after every reconnect until it is. */
function request(frame, key, what) {
  const ref = `p${Date.now().toString(36)}-${++S.seq}`;
  for (const [r, p] of S.pending) if (p.key === key) S.pending.delete(r); // the latest answer counts
  S.pending.set(ref, { frame: { ...frame, ref }, key, what });
  S.notes.set(key, { text: `${what}: sending…`, cls: "muted" });
  if (S.synced) send({ ...frame, ref });
  render();
}

function onFrame(f) {
  switch (f.type) {
    case "welcome":
      S.lead = f.lead;
      S.assignments = f.assignments || [];
      clearInterval(S.heartbeat);
      S.heartbeat = setInterval(() => send({ type: "ping" }), Math.max(5, f.heartbeat_s || 30) * 1000);
      fill("who", f.lead);
      fill(
        "report-grid",
        S.assignments.map((a) => el("option", { value: a.grid }, `${a.grid} (${label("role", a.role)})`))
      );
      break;
    case "incident":
      onIncident(f.incident, f.me);
      break;
    case "task": {
      const cur = S.tasks.get(f.task.id);
      if (!cur || f.task.rev >= cur.rev) S.tasks.set(f.task.id, f.task);
      break;
    }
    case "synced":
      S.synced = true;
      S.attempt = 0;
      setConn("online");
      for (const p of S.pending.values()) send(p.frame);
      break;
    case "escalation":
      addAlert(
        `Escalation (step ${f.step}): ${f.lead} has not answered ${f.incident} in grid ${f.grid}.` +
          (f.drill ? " (drill)" : "")
      );
      break;
    case "ok": {
      const p = S.pending.get(f.ref);
      if (p) {
        S.pending.delete(f.ref);
        S.notes.set(p.key, { text: `${p.what}: recorded ✓`, cls: "ok" });
        if (p.key === "report") document.getElementById("report-form").reset();
      }
      break;
    }
    case "error": {
      const p = f.ref && S.pending.get(f.ref);
      if (p) {
        if (f.code === "unavailable" || f.code === "rate_limited") {
          // Transient: the hub could not record it yet. Resend until it says ok.
          p.tries = (p.tries || 0) + 1;
          S.notes.set(p.key, { text: `${p.what}: not recorded yet, retrying…`, cls: "muted" });
          setTimeout(() => S.pending.has(f.ref) && S.synced && send(p.frame), backoff(Math.min(p.tries, 5), 500, 10000));
        } else {
          // Refused for good: stop resending, say why.
          S.pending.delete(f.ref);
          S.notes.set(p.key, { text: `${p.what}: ${f.message} (${f.code})`, cls: "error" });
        }
      } else {
        addAlert(`${f.code}: ${f.message}`);
      }
      break;
    }
    default:
      break;
  }
  render();
}

function onIncident(incident, me) {
  const cur = S.incidents.get(incident.id);
  if (cur && incident.rev < cur.incident.rev) return; // older view
  const fresh = !cur;
  S.incidents.set(incident.id, { incident, me: me || (cur && cur.me) || null });
  if (incident.state === "active") {
    send({ type: "receipt", incident: incident.id, rev: incident.rev });
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

function addAlert(text) {
  const box = document.getElementById("alerts");
  box.prepend(el("div", { class: "card alert", role: "alert" }, text));
  while (box.children.length > 5) box.lastChild.remove();
}

function note(key) {
  const n = S.notes.get(key);
  return n ? el("p", { class: `note ${n.cls}` }, n.text) : null;
}

function incidentCard({ incident, me }) {
  const active = incident.state === "active";
  const status = me ? me.status : "pending";
  const noteInput = el("input", { class: "ack-note", placeholder: "note (optional)", maxlength: 500 });
  const answer = (response) =>
    request(
      { type: "ack", incident: incident.id, response, note: noteInput.value.trim() || undefined },
      `ack:${incident.id}`,
      response === "accept" ? "Accept" : "Cannot come"
    );
  return el(
    "article",
    { class: `card incident ${incident.drill ? "is-drill" : ""} ${active ? "" : "is-closed"}`, dataset: { id: incident.id } },
    el("div", { class: "badges" }, badges(incident)),
    el("h3", { class: "title" }, incident.title),
    el("p", { class: "body" }, incident.body),
    el(
      "p",
      { class: "meta" },
      `${incident.id} · issued ${clock(incident.issued_at)}`,
      me ? ` · as ${label("role", me.role)} of ${me.grid}` : ""
    ),
    el("p", { class: `status status-${status}` }, `Your answer: ${label("status", status)}`),
    active && status !== "accepted" && status !== "declined"
      ? el("p", { class: "left", dataset: { ackBy: incident.ack_by } }, timeLeft(incident.ack_by))
      : null,
    active
      ? el(
          "div",
          { class: "answer" },
          noteInput,
          el("button", { class: "big primary accept", type: "button", onclick: () => answer("accept") }, "Accept"),
          el("button", { class: "big decline", type: "button", onclick: () => answer("decline") }, "Cannot come")
        )
      : el("p", { class: "muted" }, "This incident is closed."),
    note(`ack:${incident.id}`)
  );
}

function taskCard(t) {
  const noteInput = el("input", { class: "task-note", placeholder: "result / note", maxlength: 500 });
  const update = (status) =>
    request({ type: "task_update", task: t.id, status, note: noteInput.value.trim() || undefined }, `task:${t.id}`, `Task ${status}`);
  const open = t.status === "open";
  const mine = t.status === "accepted";
  const who = t.assignee.lead ? `for ${t.assignee.lead}` : `for grid ${t.assignee.grid}`;
  return el(
    "article",
    { class: "card task", dataset: { id: t.id } },
    el("h3", { class: "title" }, t.title),
    el("p", { class: "body" }, t.detail),
    el("p", { class: "meta" }, `${t.id} · ${t.kind} · ${who} · due ${clock(t.due_at)}`),
    el("p", { class: `status status-${t.status}` }, `Status: ${label("status", t.status)}`),
    open || mine
      ? el(
          "div",
          { class: "answer" },
          noteInput,
          open ? el("button", { class: "big primary task-accept", type: "button", onclick: () => update("accepted") }, "Accept task") : null,
          mine ? el("button", { class: "big primary task-done", type: "button", onclick: () => update("done") }, "Done") : null,
          mine ? el("button", { class: "big task-failed", type: "button", onclick: () => update("failed") }, "Failed") : null
        )
      : null,
    note(`task:${t.id}`)
  );
}

function render() {
  const incidents = [...S.incidents.values()].sort(
    (a, b) =>
      (a.incident.state === "active" ? 0 : 1) - (b.incident.state === "active" ? 0 : 1) ||
      Date.parse(b.incident.issued_at) - Date.parse(a.incident.issued_at)
  );
  fill("incidents", incidents.length ? incidents.map(incidentCard) : el("p", { class: "muted" }, "No activation."));
  const tasks = [...S.tasks.values()];
  fill("tasks", tasks.length ? tasks.map(taskCard) : el("p", { class: "muted" }, "No task."));
  const r = S.notes.get("report");
  fill("report-state", r ? r.text : "");
}

// The time left ticks without re-rendering the inputs.
setInterval(() => {
  for (const e of document.querySelectorAll(".left[data-ack-by]")) e.textContent = timeLeft(e.dataset.ackBy);
}, 1000);

document.getElementById("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = document.getElementById("token").value.trim();
  if (t) signIn(t);
});
document.getElementById("signout").addEventListener("click", () => signOut());
document.getElementById("report-form").addEventListener("submit", (e) => {
  e.preventDefault();
  request(
    {
      type: "report",
      grid: document.getElementById("report-grid").value,
      category: document.getElementById("report-category").value,
      title: document.getElementById("report-title").value.trim(),
      detail: document.getElementById("report-detail").value.trim(),
    },
    "report",
    "Report"
  );
});

const saved = takeToken("gridcast.lead");
if (saved) signIn(saved);
else signOut();
