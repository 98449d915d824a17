// The incidents panel: active incidents first, then the latest closed ones. A new
// incident comes in whole on the live stream and is listed at once; progress events
// carry the counts, so the bars move without a request.

import { byId, delegate, el, fill } from "../lib/dom.js";
import { clock, t } from "../lib/i18n.js";
import { bar, badges } from "../lib/incident.js";
import { throttled } from "../lib/util.js";
import { api, panelLoad } from "./api.js";

let store;
let load;
let reload;
const CLOSED_SHOWN = 10;

function put(summary) {
  const m = store.state.incidents;
  const cur = m.get(summary.incident.id);
  if (cur && cur.incident.rev > summary.incident.rev) return;
  m.set(summary.incident.id, { incident: summary.incident, counts: summary.counts || (cur && cur.counts) });
  store.touch("incidents");
}

export function start(s) {
  store = s;
  load = panelLoad("incidents-panel", async () => {
    const [active, closed] = await Promise.all([
      api("GET", "/v1/incidents?state=active"),
      api("GET", `/v1/incidents?state=closed&limit=${CLOSED_SHOWN}`),
    ]);
    const answer = [...active.incidents, ...closed.incidents];
    // Merged, not replaced: an incident that came on the stream while this was read
    // (issued after the answer was made) stays; a newer rev is never rolled back.
    const newest = answer.reduce((a, x) => (x.incident.id > a ? x.incident.id : a), "");
    const m = new Map();
    for (const [id, x] of store.state.incidents) if (id > newest) m.set(id, x);
    for (const x of answer) {
      const cur = store.state.incidents.get(x.incident.id);
      m.set(x.incident.id, cur && cur.incident.rev > x.incident.rev ? cur : x);
    }
    store.set({ incidents: m });
  });
  reload = throttled(500, load);
  store.subscribe(["incidents", "selected", "lang"], render);
  delegate(byId("incidents"), {
    select: (card) => store.set({ selected: card.dataset.id }),
  });
  // First read on the stream's hello (see main.js), so nothing falls between the two.
}

export function refresh() {
  if (load) load();
}

/** `incident` event: a new incident, listed now. */
export function onIncident(d) {
  if (d.incident) put({ incident: d.incident, counts: d.counts });
  else reload();
}

/** `progress` event: new counts (and state) of an incident. */
export function onProgress(d) {
  const cur = store.state.incidents.get(d.incident);
  if (!cur) {
    // Late answers to an incident not listed (an old closed one): read only that one.
    if (d.state === "active") fetchOne(d.incident);
    return;
  }
  cur.counts = d.counts;
  cur.incident = { ...cur.incident, rev: Math.max(cur.incident.rev, d.rev), state: d.state };
  store.touch("incidents");
}

async function fetchOne(id) {
  try {
    const d = await api("GET", `/v1/incidents/${encodeURIComponent(id)}`);
    put({ incident: d.incident, counts: d.counts });
  } catch (_) {
    reload();
  }
}

function render(s) {
  const list = [...s.incidents.values()].sort(
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
              class: `card incident ${incident.drill ? "is-drill" : ""} ${incident.state === "closed" ? "is-closed" : ""} ${s.selected === incident.id ? "selected" : ""}`,
              dataset: { id: incident.id, action: "select" },
              tabindex: 0,
            },
            el("div", { class: "badges" }, badges(incident), el("span", { class: "muted" }, `${incident.id} · ${t("rev", { rev: incident.rev })} · ${clock(incident.issued_at)}`)),
            el("h3", { class: "title" }, incident.title),
            counts ? bar(counts) : null
          )
        )
      : el("p", { class: "muted" }, t("incidents.none"))
  );
}
