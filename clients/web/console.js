// The command-center console: the public HTTP API and the live stream
// `/v1/console/events` (aggregated a few times a second, so a drill of 100,000 phones
// moves the bars without flooding the page). The operator token lives in
// sessionStorage and goes only into the Authorization header.
"use strict";

const C = {
  token: null,
  claims: null,
  grids: [],
  online: new Map(), // node code -> online leads
  incidents: new Map(), // id -> {incident, counts}
  selected: null,
  filter: "",
  escalations: [],
  reports: [],
  kinds: [],
  targets: new Set(),
  stream: null,
  attempt: 0,
  timers: {},
};

/** Runs `f` at most once per `ms` (the last call wins), by name. */
function throttle(name, ms, f) {
  if (C.timers[name]) {
    C.timers[name].again = f;
    return;
  }
  C.timers[name] = { again: null };
  Promise.resolve(f()).finally(() =>
    setTimeout(() => {
      const again = C.timers[name].again;
      C.timers[name] = null;
      if (again) throttle(name, ms, again);
    }, ms)
  );
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${C.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {}
  if (!res.ok) {
    const e = (data && data.error) || { code: String(res.status), message: text || res.statusText };
    if (res.status === 401) signOut(`Signed out: ${e.message}`);
    throw Object.assign(new Error(`${e.message} (${e.code})`), { code: e.code });
  }
  return data;
}

function toast(text, ok) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = ok ? "toast ok" : "toast";
  t.hidden = false;
  clearTimeout(C.timers.toast);
  C.timers.toast = setTimeout(() => (t.hidden = true), 6000);
}

function setConn(state, text) {
  const c = document.getElementById("conn");
  c.className = `conn ${state}`;
  c.textContent = text || state;
  document.body.dataset.conn = state;
}

// ---- sign in -------------------------------------------------------------------

async function signIn(token) {
  C.token = token;
  C.claims = claimsOf(token);
  sessionStorage.setItem("gridcast.console", token);
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("signout").hidden = false;
  const c = C.claims || {};
  fill("who", `${c.sub || "?"} · ${c.role || "?"} · ${c.scope ? `jurisdiction ${c.scope}` : "whole city"}`);
  try {
    const [reg, kinds, reports] = await Promise.all([
      api("GET", "/v1/registry"),
      api("GET", "/v1/task-kinds"),
      api("GET", "/v1/reports"),
    ]);
    C.grids = reg.grids || [];
    C.kinds = (kinds && (kinds.task_kinds || kinds.kinds || kinds)) || [];
    C.reports = (reports.reports || []).slice().reverse();
    renderReports();
    await Promise.all([loadPresence(), loadIncidents()]);
    openStream();
  } catch (e) {
    if (C.token) toast(`Could not load: ${e.message}`);
  }
}

function signOut(message) {
  sessionStorage.removeItem("gridcast.console");
  C.token = null;
  if (C.stream) C.stream.abort();
  document.getElementById("app").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("signin").hidden = false;
  fill("signin-error", message || "");
  setConn("offline");
}

// ---- live stream ---------------------------------------------------------------

async function openStream() {
  const ctrl = new AbortController();
  C.stream = ctrl;
  setConn(C.attempt ? "reconnecting" : "connecting", C.attempt ? "reconnecting…" : "connecting…");
  try {
    const res = await fetch("/v1/console/events", {
      headers: { Authorization: `Bearer ${C.token}`, Accept: "text/event-stream" },
      signal: ctrl.signal,
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
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
        if (data.length) {
          try {
            onEvent(name, JSON.parse(data.join("\n")));
          } catch (e) {
            console.warn("console event", name, e);
          }
        }
      }
    }
  } catch (e) {
    if (ctrl.signal.aborted) return;
  }
  if (C.stream !== ctrl || !C.token) return;
  const wait = backoff(C.attempt++);
  setConn("reconnecting", `reconnecting in ${Math.ceil(wait / 1000)} s…`);
  setTimeout(() => C.token && C.stream === ctrl && openStream(), wait);
}

function onEvent(name, d) {
  switch (name) {
    case "hello":
      C.attempt = 0;
      setConn("online", `live · node ${d.node}`);
      // Anything missed while the stream was down.
      throttle("incidents", 500, loadIncidents);
      throttle("presence", 2000, loadPresence);
      break;
    case "incident":
      throttle("incidents", 300, loadIncidents);
      break;
    case "progress": {
      const cur = C.incidents.get(d.incident);
      if (!cur) {
        throttle("incidents", 300, loadIncidents);
        break;
      }
      cur.counts = d.counts;
      cur.incident.rev = Math.max(cur.incident.rev, d.rev);
      cur.incident.state = d.state;
      renderIncidents();
      if (C.selected === d.incident) throttle("detail", 250, loadDetail);
      break;
    }
    case "presence":
      fill("online", `${d.online} leads online`);
      throttle("presence", 2000, loadPresence);
      break;
    case "escalation":
      C.escalations.unshift({ at: new Date().toISOString(), ...d });
      C.escalations.length = Math.min(C.escalations.length, 50);
      renderEscalations();
      if (C.selected === d.incident) throttle("detail", 250, loadDetail);
      break;
    case "report":
      C.reports.unshift(d.report || d);
      renderReports();
      break;
    default:
      break;
  }
}

// ---- grid tree -------------------------------------------------------------------

async function loadPresence() {
  const prefix = (C.claims && C.claims.scope) || commonPrefix(C.grids.map((g) => g.code));
  const p = await api("GET", `/v1/presence?prefix=${encodeURIComponent(prefix)}&leads=true`);
  fill("online", `${p.online} leads online`);
  C.online = new Map();
  for (const l of p.leads || []) {
    for (const len of [9, 12, 16, 19]) {
      if (l.grid.length >= len) {
        const k = l.grid.slice(0, len);
        C.online.set(k, (C.online.get(k) || 0) + 1);
      }
    }
  }
  renderTree();
}

function commonPrefix(codes) {
  if (!codes.length) return "";
  let p = codes[0];
  for (const c of codes) while (!c.startsWith(p)) p = p.slice(0, -1);
  return p.slice(0, Math.min(p.length, 6));
}

function renderTree() {
  const names = new Map(C.grids.map((g) => [g.code, g.name]));
  const tree = new Map(); // town -> community -> grid -> [micro]
  for (const g of C.grids) {
    if (g.code.length < 16) continue;
    const town = g.code.slice(0, 9), comm = g.code.slice(0, 12), grid = g.code.slice(0, 16);
    if (!tree.has(town)) tree.set(town, new Map());
    const t = tree.get(town);
    if (!t.has(comm)) t.set(comm, new Map());
    const c = t.get(comm);
    if (!c.has(grid)) c.set(grid, []);
    if (g.code.length > 16) c.get(grid).push(g.code);
  }
  const node = (code, title, kids) => {
    const box = el("input", {
      type: "checkbox",
      title: "target this area",
      checked: C.targets.has(code),
      onchange: (e) => {
        if (e.target.checked) C.targets.add(code);
        else C.targets.delete(code);
        document.getElementById("f-codes").value = [...C.targets].join(" ");
      },
    });
    const head = [box, el("span", { class: "code" }, title), el("span", { class: "count", dataset: { code } }, String(C.online.get(code) || 0))];
    if (!kids || !kids.length) return el("div", { class: "leaf", dataset: { code } }, head);
    return el("details", { open: code.length < 12, dataset: { code } }, el("summary", {}, head), kids);
  };
  const sorted = (m) => [...m.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  fill(
    "tree",
    sorted(tree).map(([town, comms]) =>
      node(town, `Town ${town.slice(6)}`,
        sorted(comms).map(([comm, grids]) =>
          node(comm, `Community ${comm.slice(9)}`,
            sorted(grids).map(([grid, micros]) =>
              node(grid, names.get(grid) || grid, micros.map((m) => node(m, names.get(m) || m)))
            )
          )
        )
      )
    )
  );
}

// ---- incidents ---------------------------------------------------------------------

async function loadIncidents() {
  const [active, closed] = await Promise.all([
    api("GET", "/v1/incidents?state=active"),
    api("GET", "/v1/incidents?state=closed"),
  ]);
  C.incidents = new Map();
  for (const s of [...active.incidents, ...closed.incidents.slice(0, 10)]) C.incidents.set(s.incident.id, s);
  renderIncidents();
  if (C.selected) throttle("detail", 250, loadDetail);
}

/** A stacked bar: accepted, declined, delivered, pending (with a legend unless compact). */
function bar(c, total, compact) {
  const n = total || c.pending + c.delivered + c.accepted + c.declined || 1;
  const seg = (cls, v) => el("span", { class: `seg ${cls}`, style: { width: `${(100 * v) / n}%` }, title: `${cls} ${v}` });
  return el(
    "div",
    { class: "progress" },
    el("div", { class: "bar" }, seg("accepted", c.accepted), seg("declined", c.declined), seg("delivered", c.delivered), seg("pending", c.pending)),
    compact ? null : el(
      "div",
      { class: "legend" },
      el("span", { class: "n accepted", dataset: { k: "accepted" } }, `${c.accepted} accepted`),
      el("span", { class: "n declined", dataset: { k: "declined" } }, `${c.declined} declined`),
      el("span", { class: "n delivered", dataset: { k: "delivered" } }, `${c.delivered} delivered`),
      el("span", { class: "n pending", dataset: { k: "pending" } }, `${c.pending} pending`),
      el("span", { class: "n" }, `of ${n}`)
    )
  );
}

function renderIncidents() {
  const list = [...C.incidents.values()].sort(
    (a, b) =>
      (a.incident.state === "active" ? 0 : 1) - (b.incident.state === "active" ? 0 : 1) ||
      b.incident.id.localeCompare(a.incident.id)
  );
  fill(
    "incidents",
    list.length
      ? list.map(({ incident, counts }) =>
          el(
            "article",
            {
              class: `card incident ${incident.drill ? "is-drill" : ""} ${incident.state === "closed" ? "is-closed" : ""} ${C.selected === incident.id ? "selected" : ""}`,
              dataset: { id: incident.id },
              onclick: () => select(incident.id),
            },
            el("div", { class: "badges" }, badges(incident), el("span", { class: "muted" }, `${incident.id} · rev ${incident.rev} · ${clock(incident.issued_at)}`)),
            el("h3", { class: "title" }, incident.title),
            bar(counts)
          )
        )
      : el("p", { class: "muted" }, "No incident yet.")
  );
}

function select(id) {
  C.selected = id;
  C.filter = "";
  renderIncidents();
  loadDetail();
}

async function loadDetail() {
  const id = C.selected;
  if (!id) return;
  const q = C.filter ? `?status=${C.filter}` : "";
  const [d, rec, tl, tasks] = await Promise.all([
    api("GET", `/v1/incidents/${encodeURIComponent(id)}`),
    api("GET", `/v1/incidents/${encodeURIComponent(id)}/recipients${q}`),
    api("GET", `/v1/incidents/${encodeURIComponent(id)}/timeline`),
    api("GET", `/v1/incidents/${encodeURIComponent(id)}/tasks`),
  ]);
  if (C.selected !== id) return;
  renderDetail(d, rec.recipients, tl.events, tasks.tasks);
}

function renderDetail(d, recipients, events, tasks) {
  const i = d.incident;
  const sec = document.getElementById("detail");
  sec.hidden = false;
  const active = i.state === "active";
  const keep = captureForms(sec);
  const parts = [
    el("div", { class: "badges" }, badges(i), el("span", { class: "muted" }, `${i.id} · rev ${i.rev}`)),
    el("h2", { class: "title" }, i.title),
    el("p", { class: "body" }, i.body),
    el("p", { class: "meta" }, `Issued ${clock(i.issued_at)} · answer by ${clock(i.ack_by)} · targets ${i.targets.codes.join(", ")}${i.targets.roles && i.targets.roles.length ? ` (${i.targets.roles.join(", ")})` : ""}`),
    bar(d.counts),
    el("h3", {}, "Per grid"),
    el(
      "table",
      { class: "grids" },
      el("thead", {}, el("tr", {}, ["grid", "recipients", "delivered", "accepted", "declined", "pending", ""].map((h) => el("th", {}, h)))),
      el(
        "tbody",
        {},
        d.grids.map((g) => {
          const pending = g.recipients - g.delivered - g.accepted - g.declined;
          return el(
            "tr",
            { dataset: { grid: g.code } },
            el("td", { class: "code" }, g.code),
            el("td", {}, String(g.recipients)),
            el("td", { class: "delivered" }, String(g.delivered)),
            el("td", { class: "accepted" }, String(g.accepted)),
            el("td", { class: "declined" }, String(g.declined)),
            el("td", { class: "pending" }, String(pending)),
            el("td", { class: "wide" }, bar({ accepted: g.accepted, declined: g.declined, delivered: g.delivered, pending }, g.recipients, true))
          );
        })
      )
    ),
    active ? actions(i) : el("p", { class: "muted" }, "Closed."),
    el("h3", {}, "Tasks"),
    tasks.length
      ? el(
          "table",
          { class: "tasks" },
          el("thead", {}, el("tr", {}, ["task", "kind", "title", "assignee", "status", "by", "note", "due"].map((h) => el("th", {}, h)))),
          el(
            "tbody",
            {},
            tasks.map((t) =>
              el(
                "tr",
                { dataset: { task: t.id, status: t.status } },
                el("td", {}, t.id),
                el("td", {}, t.kind),
                el("td", {}, t.title),
                el("td", {}, t.assignee.lead || t.assignee.grid),
                el("td", { class: `status status-${t.status}` }, label("status", t.status)),
                el("td", {}, t.accepted_by || ""),
                el("td", {}, t.note || ""),
                el("td", {}, clock(t.due_at))
              )
            )
          )
        )
      : el("p", { class: "muted" }, "No task."),
    el("h3", {}, "Recipients ",
      el("select", { id: "r-filter", onchange: (e) => { C.filter = e.target.value; loadDetail(); } },
        ["", "pending", "delivered", "accepted", "declined"].map((s) => el("option", { value: s, selected: s === C.filter }, s ? label("status", s) : "all")))),
    el(
      "table",
      { class: "recipients" },
      el("thead", {}, el("tr", {}, ["lead", "grid", "role", "status", "delivered", "answered"].map((h) => el("th", {}, h)))),
      el(
        "tbody",
        {},
        recipients.slice(0, 500).map((r) =>
          el(
            "tr",
            { dataset: { lead: r.lead, status: r.status } },
            el("td", {}, r.lead),
            el("td", { class: "code" }, r.grid),
            el("td", {}, label("role", r.role)),
            el("td", { class: `status status-${r.status}` }, label("status", r.status)),
            el("td", {}, r.delivered_at ? clock(r.delivered_at) : ""),
            el("td", {}, r.acked_at ? clock(r.acked_at) : "")
          )
        )
      )
    ),
    recipients.length > 500 ? el("p", { class: "muted" }, `… and ${recipients.length - 500} more (filter by status).`) : null,
    el("h3", {}, "Timeline"),
    el(
      "ol",
      { class: "timeline" },
      events.slice(-300).reverse().map((e) =>
        el("li", { class: `ev ev-${e.kind}` }, el("span", { class: "muted" }, clock(e.at)), " ", el("strong", {}, e.kind), " ", e.actor || "", e.lead ? ` → ${e.lead}` : "", e.detail ? ` — ${typeof e.detail === "string" ? e.detail : JSON.stringify(e.detail)}` : "")
      )
    ),
  ];
  sec.replaceChildren(...parts.filter((p) => p !== null && p !== undefined && p !== false));
  restoreForms(sec, keep);
}

/** Keeps what the operator was typing across a live re-render. */
function captureForms(root) {
  const v = {};
  for (const e of root.querySelectorAll("input[id],textarea[id],select[id]")) v[e.id] = e.type === "checkbox" ? e.checked : e.value;
  v.focus = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : null;
  return v;
}
function restoreForms(root, v) {
  for (const [id, val] of Object.entries(v)) {
    const e = id !== "focus" && root.querySelector(`#${CSS.escape(id)}`);
    if (!e || id === "r-filter") continue;
    if (e.type === "checkbox") e.checked = val;
    else e.value = val;
  }
  if (v.focus) {
    const f = document.getElementById(v.focus);
    if (f) f.focus();
  }
}

function actions(i) {
  const id = encodeURIComponent(i.id);
  const run = (f) => async (ev) => {
    ev.preventDefault();
    try {
      await f(ev.target);
      ev.target.reset();
      loadDetail();
    } catch (e) {
      toast(e.message);
    }
  };
  const kinds = C.kinds.length ? C.kinds : [{ id: "other", name: "other" }];
  return el(
    "div",
    { class: "actions" },
    el(
      "form",
      { id: "update-form", onsubmit: run(async () => {
        await api("POST", `/v1/incidents/${id}/updates`, { body: document.getElementById("u-body").value });
        toast("Update sent to every recipient.", true);
      }) },
      el("h3", {}, "Post an update"),
      el("textarea", { id: "u-body", rows: 2, required: true, maxlength: 4000, placeholder: "new message for everyone" }),
      el("button", { type: "submit" }, "Send update")
    ),
    el(
      "form",
      { id: "task-form", onsubmit: run(async () => {
        const who = document.getElementById("t-who").value.trim();
        const kind = document.getElementById("t-assignee").value;
        const due = document.getElementById("t-due").value;
        const r = await api("POST", `/v1/incidents/${id}/tasks`, {
          kind: document.getElementById("t-kind").value,
          title: document.getElementById("t-title").value,
          detail: document.getElementById("t-detail").value,
          assignee: kind === "grid" ? { grid: who } : { lead: who },
          ...(due ? { due_in_s: Number(due) } : {}),
        });
        toast(`Task ${r.id} created.`, true);
      }) },
      el("h3", {}, "Create a task"),
      el("select", { id: "t-kind" }, kinds.map((k) => el("option", { value: k.id }, k.name || k.id))),
      el("input", { id: "t-title", required: true, maxlength: 200, placeholder: "title" }),
      el("input", { id: "t-detail", maxlength: 4000, placeholder: "detail" }),
      el("select", { id: "t-assignee" }, el("option", { value: "lead" }, "lead"), el("option", { value: "grid" }, "any lead of grid")),
      el("input", { id: "t-who", required: true, placeholder: "lead id or grid code" }),
      el("input", { id: "t-due", type: "number", min: 1, placeholder: "due in s" }),
      el("button", { type: "submit" }, "Create task")
    ),
    el(
      "form",
      { id: "close-form", onsubmit: run(async () => {
        await api("POST", `/v1/incidents/${id}/close`, {
          reason: document.getElementById("c-reason").value,
          force: document.getElementById("c-force").checked,
        });
        toast(`${i.id} closed.`, true);
        loadIncidents();
      }) },
      el("h3", {}, "Close"),
      el("input", { id: "c-reason", required: true, maxlength: 500, placeholder: "reason" }),
      el("label", {}, el("input", { id: "c-force", type: "checkbox" }), " even with open tasks"),
      el("button", { class: "danger", type: "submit" }, "Close incident")
    )
  );
}

// ---- side panels -------------------------------------------------------------------

function renderEscalations() {
  fill(
    "escalations",
    C.escalations.length
      ? C.escalations.map((e) =>
          el(
            "div",
            { class: `card escalation ${e.drill ? "is-drill" : ""}`, dataset: { incident: e.incident } },
            e.drill ? el("span", { class: "badge drill" }, "DRILL") : null,
            el("strong", {}, `${e.incident} · step ${e.step}`),
            el("p", {}, e.task ? `task ${e.task} overdue` : `${e.silent_count} silent${e.silent && e.silent.length ? `: ${e.silent.join(", ")}` : ""}`),
            el("p", { class: "muted" }, clock(e.at))
          )
        )
      : el("p", { class: "muted" }, "None.")
  );
}

function renderReports() {
  fill(
    "reports",
    C.reports.length
      ? C.reports.slice(0, 50).map((r) =>
          el(
            "div",
            { class: "card report", dataset: { id: r.id } },
            el("div", { class: "badges" }, el("span", { class: "badge" }, label("category", r.category)), el("span", { class: "muted" }, `${r.id} · ${clock(r.at)}`)),
            el("strong", { class: "title" }, r.title),
            el("p", { class: "body" }, r.detail),
            el("p", { class: "muted" }, `${r.lead} · grid ${r.grid}${r.incident ? ` · ${r.incident}` : ""}`)
          )
        )
      : el("p", { class: "muted" }, "None.")
  );
}

// ---- activation form ---------------------------------------------------------------

document.getElementById("issue-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const codes = document.getElementById("f-codes").value.split(/[\s,;]+/).filter(Boolean);
  const roles = [...document.querySelectorAll('input[name="role"]:checked')].map((e) => e.value);
  const win = document.getElementById("f-window").value;
  const drill = document.getElementById("f-drill").checked;
  const body = {
    title: document.getElementById("f-title").value,
    body: document.getElementById("f-body").value,
    level: document.getElementById("f-level").value,
    category: document.getElementById("f-category").value,
    drill,
    targets: { codes, ...(roles.length ? { roles } : {}) },
    ...(win ? { ack_within_s: Number(win) } : {}),
  };
  if (!drill && !confirm("This is a REAL activation (not a drill). Send it?")) return;
  const button = document.getElementById("f-submit");
  button.disabled = true;
  try {
    const r = await api("POST", "/v1/incidents", body);
    toast(`${r.id} issued: ${r.recipients} recipients, ${r.online} online now.`, true);
    ev.target.reset();
    C.targets.clear();
    renderTree();
    await loadIncidents();
    select(r.id);
  } catch (e) {
    toast(`Not issued: ${e.message}`);
  } finally {
    button.disabled = false;
  }
});
document.getElementById("f-drill").addEventListener("change", (e) => {
  document.getElementById("issue").classList.toggle("is-drill", e.target.checked);
  document.getElementById("f-submit").textContent = e.target.checked ? "Issue DRILL activation" : "Issue activation";
});
document.getElementById("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = document.getElementById("token").value.trim();
  if (t) signIn(t);
});
document.getElementById("signout").addEventListener("click", () => signOut());

const saved = takeToken("gridcast.console");
if (saved) signIn(saved);
else signOut();
