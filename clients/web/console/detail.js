// The selected incident: its head and bar (moved by progress events, no request), per
// grid counts and recipients one page at a time, tasks, the timeline's latest events,
// and the update, task and close forms (declared once in the HTML, never rebuilt, so
// what an operator types survives every live update).

import { byId, delegate, el, fill, formValues } from "../lib/dom.js";
import { clock, num, t, term } from "../lib/i18n.js";
import { areaShapes, bar, badges } from "../lib/incident.js";
import { throttled } from "../lib/util.js";
import { api, apiBlob, panelLoad } from "./api.js";
import * as map from "./map.js";

const GRID_PAGE = 50;
const RECIPIENT_PAGE = 100;
const TIMELINE_TAIL = 200;

let store;
let load;
let reload;
const view = { id: null, detail: null, recipients: null, tasks: [], timeline: null, filter: "", offset: 0, gridPage: 0 };

const path = (id, rest = "") => `/v1/incidents/${encodeURIComponent(id)}${rest}`;

let asked = 0; // the latest request's number: only its answer is shown

async function fetchDetail() {
  const id = store.state.selected;
  if (!id) return;
  const mine = ++asked;
  const q = `?limit=${RECIPIENT_PAGE}&offset=${view.offset}${view.filter ? `&status=${view.filter}` : ""}`;
  const [d, rec, tl, tasks] = await Promise.all([
    api("GET", path(id)),
    api("GET", path(id, `/recipients${q}`)),
    api("GET", path(id, `/timeline?limit=${TIMELINE_TAIL}`)),
    api("GET", path(id, "/tasks")),
  ]);
  if (mine !== asked || store.state.selected !== id) return;
  // Acks can shrink a filtered list below the page shown: go to its last page.
  if (rec.total > 0 && view.offset >= rec.total) {
    view.offset = Math.floor((rec.total - 1) / RECIPIENT_PAGE) * RECIPIENT_PAGE;
    return load();
  }
  Object.assign(view, { id, detail: d, recipients: rec, timeline: tl, tasks: tasks.tasks });
  // The detail's counts are as new as any progress event's.
  const cur = store.state.incidents.get(id);
  if (cur && cur.incident.rev <= d.incident.rev) {
    cur.incident = d.incident;
    cur.counts = d.counts;
    store.touch("incidents");
  }
  renderBody();
  renderHead(store.state);
}

export function start(s) {
  store = s;
  load = panelLoad("detail", fetchDetail);
  // At most one read of the detail every 600 ms while its incident changes: its grid
  // rows follow an ack within a second (a read just before, for the delivery, delays
  // the next one by at most this much, plus the read itself).
  reload = throttled(600, load);
  store.subscribe(["selected"], () => {
    view.filter = "";
    view.offset = 0;
    view.gridPage = 0;
    byId("r-filter").value = "";
    view.detail = null;
    byId("detail").hidden = !store.state.selected;
    // Nothing of the incident shown before stays, not even what was typed for it.
    for (const region of ["d-grids", "d-tasks", "d-recipients", "d-timeline", "d-map", "d-checkins"]) fill(region);
    for (const f of byId("d-actions").querySelectorAll("form")) f.reset();
    for (const m of byId("detail").querySelectorAll(".form-msg")) m.textContent = "";
    load();
    map.load(store.state.selected);
  });
  store.subscribe(["incidents", "lang"], renderHead);
  store.subscribe(["lang"], renderBody);
  store.subscribe(["lang"], () => map.render());
  store.subscribe(["kinds"], renderKinds);
  delegate(byId("detail"), {
    "r-filter": (sel) => {
      view.filter = sel.value;
      view.offset = 0;
      load();
    },
    "r-prev": () => {
      view.offset = Math.max(0, view.offset - RECIPIENT_PAGE);
      load();
    },
    "r-next": () => {
      if (view.recipients && view.recipients.next_offset) view.offset = view.recipients.next_offset;
      load();
    },
    cap: async (button) => {
      // With the token in a header (never in a URL): fetched, then saved from memory.
      const id = store.state.selected;
      const profile = button.dataset.profile;
      let blob;
      try {
        blob = await apiBlob(path(id, `/cap${profile ? `?profile=${profile}` : ""}`));
      } catch (e) {
        const box = document.querySelector("#detail > .panel-error");
        box.textContent = t("form.refused", { why: e.message });
        box.hidden = false;
        return;
      }
      const a = el("a", { href: URL.createObjectURL(blob), download: `${id}-r${view.detail ? view.detail.incident.rev : 0}${profile ? `-${profile}` : ""}.cap.xml` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 0);
    },
    "g-prev": () => {
      view.gridPage = Math.max(0, view.gridPage - 1);
      renderBody();
    },
    "g-next": () => {
      view.gridPage += 1;
      renderBody();
    },
  });
  forms();
  panelLoad("d-actions", async () => {
    const k = await api("GET", "/v1/task-kinds");
    store.set({ kinds: k.task_kinds || [] });
  })();
}

export function refresh() {
  if (store && store.state.selected) {
    load();
    map.load(store.state.selected);
  }
}

/** A check-in on an incident: its sketch and list (read only then: they are large). */
export function onCheckin(id) {
  if (store.state.selected === id) {
    map.load(id);
    reload();
  }
}

/** `progress` for the selected incident: the head moves now, the rest within 1 s. */
export function onProgress(d) {
  if (store.state.selected === d.incident) reload();
}

/** Something else happened to an incident (an escalation): read it again if shown. */
export function onChange(id) {
  if (store.state.selected === id) reload();
}

function renderKinds(s) {
  const kinds = s.kinds.length ? s.kinds : [{ id: "other", name: "other" }];
  fill("t-kind", kinds.map((k) => el("option", { value: k.id }, k.name || k.id)));
}

function renderHead(s) {
  const id = s.selected;
  const cur = id && s.incidents.get(id);
  const i = (cur && cur.incident) || (view.detail && view.detail.incident);
  if (!i) return;
  const counts = (cur && cur.counts) || view.detail.counts;
  const active = i.state === "active";
  byId("d-actions").hidden = !active;
  byId("d-closed").hidden = active;
  const roles = i.targets.roles && i.targets.roles.length ? ` (${i.targets.roles.map((r) => t(`roles.${r}`)).join(", ")})` : "";
  fill(
    "d-head",
    el("div", { class: "badges" }, badges(i), el("span", { class: "muted" }, `${i.id} · ${t("rev", { rev: i.rev })}`)),
    el("h2", { class: "title" }, i.title),
    el("p", { class: "body" }, i.body),
    el("p", { class: "meta" }, t("detail.meta", { issued: clock(i.issued_at), by: clock(i.ack_by), targets: targetsText(i.targets) + roles })),
    counts ? bar(counts) : null
  );
}

/** Codes and shapes of a target, in words. */
function targetsText(targets) {
  const shapes = areaShapes(targets.area).map((a) => (a.polygon ? `▱${a.polygon.length}` : a.circle ? `◯ ${a.circle.lat},${a.circle.lon} ${num(a.circle.radius_m)} m` : ""));
  return [...targets.codes, ...shapes].join(", ");
}

function pager(id, shown, from, total, hasNext) {
  const p = byId(id);
  p.hidden = total <= shown && from === 0;
  p.querySelector(".page").textContent = t("pager.range", { from: num(total ? from + 1 : 0), to: num(from + shown), total: num(total) });
  p.querySelector("[data-action$=prev]").disabled = from === 0;
  p.querySelector("[data-action$=next]").disabled = !hasNext;
}

function renderBody() {
  const d = view.detail;
  if (!d) return;
  const grids = d.grids;
  const pages = Math.max(1, Math.ceil(grids.length / GRID_PAGE));
  view.gridPage = Math.min(view.gridPage, pages - 1);
  const from = view.gridPage * GRID_PAGE;
  const shown = grids.slice(from, from + GRID_PAGE);
  fill(
    "d-grids",
    el(
      "table",
      { class: "grids" },
      el("thead", {}, el("tr", {}, ["th.grid", "th.recipients", "status.delivered", "status.accepted", "status.declined", "status.pending", null].map((h) => el("th", {}, h ? t(h) : "")))),
      el(
        "tbody",
        {},
        shown.map((g) => {
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
    )
  );
  pager("g-pager", shown.length, from, grids.length, from + GRID_PAGE < grids.length);

  fill(
    "d-tasks",
    view.tasks.length
      ? el(
          "table",
          { class: "tasks" },
          el("thead", {}, el("tr", {}, ["th.task", "th.kind", "th.title", "th.assignee", "th.status", "th.by", "th.note", "th.due"].map((h) => el("th", {}, t(h))))),
          el(
            "tbody",
            {},
            view.tasks.map((x) =>
              el(
                "tr",
                { dataset: { task: x.id, status: x.status } },
                el("td", {}, x.id),
                el("td", {}, kindName(x.kind)),
                el("td", {}, x.title),
                el("td", {}, x.assignee.lead || x.assignee.grid),
                el("td", { class: `status status-${x.status}` }, term("status", x.status)),
                el("td", {}, x.accepted_by || ""),
                el("td", {}, x.note || ""),
                el("td", {}, clock(x.due_at))
              )
            )
          )
        )
      : el("p", { class: "muted" }, t("detail.no_task"))
  );

  const rec = view.recipients;
  fill(
    "d-recipients",
    el(
      "table",
      { class: "recipients" },
      el("thead", {}, el("tr", {}, ["th.lead", "th.grid", "th.role", "th.status", "status.delivered", "th.answered"].map((h) => el("th", {}, t(h))))),
      el(
        "tbody",
        {},
        rec.recipients.map((r) =>
          el(
            "tr",
            { dataset: { lead: r.lead, status: r.status } },
            el("td", {}, r.lead),
            el("td", { class: "code" }, r.grid),
            el("td", {}, t(`roles.${r.role}`)),
            el("td", { class: `status status-${r.status}` }, term("status", r.status)),
            el("td", {}, r.delivered_at ? clock(r.delivered_at) : ""),
            el("td", {}, r.acked_at ? clock(r.acked_at) : "")
          )
        )
      )
    )
  );
  pager("r-pager", rec.recipients.length, view.offset, rec.total, rec.next_offset !== undefined && rec.next_offset !== null);

  const events = view.timeline.events.slice().reverse();
  fill(
    "d-timeline",
    events.map((e) =>
      el(
        "li",
        { class: `ev ev-${e.kind}` },
        el("span", { class: "muted" }, clock(e.at)),
        " ",
        el("strong", {}, term("event", e.kind)),
        " ",
        e.actor || "",
        e.lead ? ` → ${e.lead}` : "",
        e.detail ? ` — ${e.detail}` : ""
      )
    ),
    view.timeline.total > events.length ? el("li", { class: "muted" }, t("detail.timeline_more", { n: num(view.timeline.total - events.length) })) : null
  );
}

function kindName(id) {
  const k = store.state.kinds.find((x) => x.id === id);
  return (k && k.name) || id;
}

/** The three forms: each says in its own line what happened. */
function forms() {
  const run = (formId, send) => {
    const form = byId(formId);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const msg = form.querySelector(".form-msg");
      const id = store.state.selected;
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      msg.className = "form-msg muted";
      msg.textContent = t("form.sending");
      try {
        const text = await send(id, formValues(form));
        form.reset();
        msg.className = "form-msg ok";
        msg.textContent = text;
        reload();
      } catch (e) {
        msg.className = "form-msg error";
        msg.textContent = t("form.refused", { why: e.message });
      } finally {
        button.disabled = false;
      }
    });
  };
  run("update-form", async (id, v) => {
    await api("POST", path(id, "/updates"), { body: v.body });
    return t("update.sent");
  });
  run("task-form", async (id, v) => {
    const who = v.who.trim();
    const r = await api("POST", path(id, "/tasks"), {
      kind: v.kind,
      title: v.title,
      detail: v.detail,
      assignee: v.assignee === "grid" ? { grid: who } : { lead: who },
      ...(v.due ? { due_in_s: Number(v.due) } : {}),
    });
    return t("task.created", { id: r.id });
  });
  run("close-form", async (id, v) => {
    await api("POST", path(id, "/close"), { reason: v.reason, force: v.force });
    return t("close.done", { id });
  });
}
