// The phone page's views. Each incident and task card is built once and then only its
// text is updated, so a note being typed, or the focus, survives every live frame.

import { el, fill } from "../lib/dom.js";
import { clock, t, term, timeLeft } from "../lib/i18n.js";
import { badges } from "../lib/incident.js";

const cards = new Map(); // "incident:ID" / "task:ID" -> element

function card(key, build) {
  if (!cards.has(key)) cards.set(key, build());
  return cards.get(key);
}

/**
 * Puts `nodes` in `box` in this order, moving nothing that is already in place, so
 * that the focus (and a phone's keyboard) stays in a note being typed.
 */
function place(box, nodes) {
  const now = [...box.children];
  if (now.length === nodes.length && now.every((n, i) => n === nodes[i])) return;
  fill(box, nodes);
}

/** The line under a card saying what happened to the person's answer. */
export function noteText(n) {
  if (!n) return "";
  const what = n.what();
  switch (n.state) {
    case "sending":
      return t("answer.sending", { what });
    case "ok":
      return t("answer.ok", { what });
    case "retrying":
      return t("answer.retrying", { what });
    default:
      return t("answer.refused", { what, why: n.why() });
  }
}

function incidentCard(id) {
  return el(
    "article",
    { class: "card incident", dataset: { id } },
    el("div", { class: "badges" }),
    el("h3", { class: "title" }),
    el("p", { class: "body" }),
    el("p", { class: "meta" }),
    el("p", { class: "status" }),
    el("p", { class: "left" }),
    el("p", { class: "muted closed-note" }),
    el(
      "div",
      { class: "answer" },
      el("input", { class: "ack-note", name: "note", "data-limit": "note" }),
      el("button", { class: "big primary accept", type: "button", "data-action": "accept", dataset: { id } }),
      el("button", { class: "big decline", type: "button", "data-action": "decline", dataset: { id } }),
      el("button", { class: "checkin", type: "button", "data-action": "checkin", dataset: { id } })
    ),
    el("p", { class: "note" }),
    el("p", { class: "checkin-note" })
  );
}

export function renderIncidents(S) {
  const list = [...S.incidents.values()].sort(
    (a, b) =>
      (a.incident.state === "active" ? 0 : 1) - (b.incident.state === "active" ? 0 : 1) ||
      Date.parse(b.incident.issued_at) - Date.parse(a.incident.issued_at)
  );
  const nodes = list.map(({ incident, me }) => {
    const c = card(`incident:${incident.id}`, () => incidentCard(incident.id));
    const active = incident.state === "active";
    const status = me ? me.status : "pending";
    const answered = status === "accepted" || status === "declined";
    c.className = `card incident ${incident.drill ? "is-drill" : ""} ${active ? "" : "is-closed"}`;
    fill(c.querySelector(".badges"), badges(incident));
    c.querySelector(".title").textContent = incident.title;
    c.querySelector(".body").textContent = incident.body;
    c.querySelector(".meta").textContent =
      `${incident.id} · ${t("lead.issued", { at: clock(incident.issued_at) })}` +
      (me ? ` · ${t("lead.as", { role: t(`roles.${me.role}`), grid: me.grid })}` : "");
    const st = c.querySelector(".status");
    st.className = `status status-${status}`;
    st.textContent = t("lead.your_answer", { status: term("status", status) });
    const left = c.querySelector(".left");
    left.hidden = !(active && !answered);
    left.dataset.ackBy = incident.ack_by;
    left.textContent = timeLeft(incident.ack_by);
    const closed = c.querySelector(".closed-note");
    closed.hidden = active;
    closed.textContent = active ? "" : t("lead.closed");
    c.querySelector(".answer").hidden = !active;
    const input = c.querySelector(".ack-note");
    input.placeholder = t("lead.note_hint");
    if (S.limits) input.maxLength = S.limits.note;
    c.querySelector(".accept").textContent = t("lead.accept");
    c.querySelector(".decline").textContent = t("lead.decline");
    c.querySelector(".note").textContent = noteText(S.notes.get(`ack:${incident.id}`));
    c.querySelector(".note").className = `note ${noteClass(S.notes.get(`ack:${incident.id}`))}`;
    c.querySelector(".checkin").textContent = t("lead.checkin");
    const where = S.notes.get(`checkin:${incident.id}`);
    c.querySelector(".checkin-note").textContent = noteText(where);
    c.querySelector(".checkin-note").className = `checkin-note ${noteClass(where)}`;
    return c;
  });
  place(document.getElementById("incidents"), nodes);
  document.getElementById("no-incident").hidden = nodes.length > 0;
}

const noteClass = (n) => (!n ? "" : n.state === "ok" ? "ok" : n.state === "refused" ? "error" : "muted");

function taskCard(id) {
  return el(
    "article",
    { class: "card task", dataset: { id } },
    el("h3", { class: "title" }),
    el("p", { class: "body" }),
    el("p", { class: "meta" }),
    el("p", { class: "status" }),
    el(
      "div",
      { class: "answer" },
      el("input", { class: "task-note", name: "note", "data-limit": "note" }),
      el("button", { class: "big primary task-accept", type: "button", "data-action": "task-accepted", dataset: { id } }),
      el("button", { class: "big primary task-done", type: "button", "data-action": "task-done", dataset: { id } }),
      el("button", { class: "big task-failed", type: "button", "data-action": "task-failed", dataset: { id } })
    ),
    el("p", { class: "note" })
  );
}

export function renderTasks(S) {
  const nodes = [...S.tasks.values()].map((x) => {
    const c = card(`task:${x.id}`, () => taskCard(x.id));
    const open = x.status === "open";
    const mine = x.status === "accepted";
    c.querySelector(".title").textContent = x.title;
    c.querySelector(".body").textContent = x.detail;
    const who = x.assignee.lead ? t("task.for_lead", { lead: x.assignee.lead }) : t("task.for_grid", { grid: x.assignee.grid });
    c.querySelector(".meta").textContent = `${x.id} · ${S.kindName(x.kind)} · ${who} · ${t("task.due", { at: clock(x.due_at) })}`;
    const st = c.querySelector(".status");
    st.className = `status status-${x.status}`;
    st.textContent = t("task.status_line", { status: term("status", x.status) });
    c.querySelector(".answer").hidden = !(open || mine);
    const input = c.querySelector(".task-note");
    input.placeholder = t("task.note_hint");
    if (S.limits) input.maxLength = S.limits.note;
    const show = (sel, yes, key) => {
      const b = c.querySelector(sel);
      b.hidden = !yes;
      b.textContent = t(key);
    };
    show(".task-accept", open, "task.accept");
    show(".task-done", mine, "task.done");
    show(".task-failed", mine, "task.failed");
    const n = S.notes.get(`task:${x.id}`);
    c.querySelector(".note").textContent = noteText(n);
    c.querySelector(".note").className = `note ${noteClass(n)}`;
    return c;
  });
  place(document.getElementById("tasks"), nodes);
  document.getElementById("no-task").hidden = nodes.length > 0;
}

export function renderReportState(S) {
  const n = S.notes.get("report");
  const e = document.getElementById("report-state");
  e.textContent = noteText(n);
  e.className = noteClass(n) || "muted";
}

/** An alert on top of the page (escalations, errors without a request), at most five. */
export function addAlert(text) {
  const box = document.getElementById("alerts");
  box.prepend(el("div", { class: "card alert", role: "alert" }, text));
  while (box.children.length > 5) box.lastChild.remove();
}

/** The time left ticks without touching the inputs. */
export function tick() {
  for (const e of document.querySelectorAll(".left[data-ack-by]")) e.textContent = timeLeft(e.dataset.ackBy);
}
