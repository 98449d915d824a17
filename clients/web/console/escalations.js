// Escalations stay on screen until an operator acknowledges them here. They come on the
// live stream and, after a reconnect or a `lagged`, from `GET /v1/escalations`, so one
// that happened while the stream was behind is shown all the same. Acknowledged ids
// are remembered in this browser for this operator.

import { byId, delegate, el, fill } from "../lib/dom.js";
import { clock, relative, t } from "../lib/i18n.js";
import { api, panelLoad } from "./api.js";

let store;
let load;

const idOf = (e) => (e.task ? `${e.incident}/task/${e.task}/${e.step}` : `${e.incident}/${e.step}`);
const ackKey = () => `gridcast.acked.${(store.state.claims && store.state.claims.sub) || "?"}`;

function acked() {
  try {
    return new Set(JSON.parse(localStorage.getItem(ackKey()) || "[]"));
  } catch (_) {
    return new Set();
  }
}

function acknowledge(id) {
  const a = [...acked(), id].slice(-1000);
  localStorage.setItem(ackKey(), JSON.stringify(a));
  store.set({ escalations: store.state.escalations.filter((e) => e.id !== id) });
}

function merge(items) {
  const done = acked();
  const byId = new Map(store.state.escalations.map((e) => [e.id, e]));
  for (const e of items) if (!done.has(e.id)) byId.set(e.id, { ...byId.get(e.id), ...e });
  const list = [...byId.values()].sort((a, b) => String(b.at).localeCompare(String(a.at)));
  store.set({ escalations: list.slice(0, 500) }); // as many as the hub lists
}

export function start(s) {
  store = s;
  load = panelLoad("escalations-panel", async () => {
    const r = await api("GET", "/v1/escalations");
    merge(r.escalations);
  });
  store.subscribe(["escalations", "lang"], render);
  delegate(byId("escalations"), { ack: (b) => acknowledge(b.dataset.id) });
  // First read on the stream's hello (see main.js), so nothing falls between the two.
}

export function refresh() {
  if (load) load();
}

export function onEscalation(d) {
  merge([{ ...d, id: idOf(d), at: d.at || new Date().toISOString() }]);
}

function render(s) {
  fill(
    "escalations",
    s.escalations.length
      ? s.escalations.map((e) =>
          el(
            "div",
            { class: `card escalation ${e.drill ? "is-drill" : ""}`, dataset: { id: e.id, incident: e.incident } },
            e.drill ? el("span", { class: "badge drill" }, t("drill.badge")) : null,
            el("strong", {}, t("escalation.head", { incident: e.incident, step: e.step })),
            e.title ? el("p", { class: "title" }, e.title) : null,
            el(
              "p",
              {},
              e.task
                ? t("escalation.task", { task: e.task })
                : t("escalation.silent", { n: e.silent_count ?? 0 }) + (e.silent && e.silent.length ? `: ${e.silent.join(", ")}` : "")
            ),
            el("p", { class: "muted" }, `${clock(e.at)} · ${relative(e.at)}`),
            el("button", { type: "button", class: "ack", "data-action": "ack", dataset: { id: e.id } }, t("escalation.ack"))
          )
        )
      : el("p", { class: "muted" }, t("none"))
  );
}
