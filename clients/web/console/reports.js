// Reports from the grids: the latest 50, newest first; new ones arrive on the stream,
// and the whole list is read again after a reconnect or a `lagged`.

import { el, fill } from "../lib/dom.js";
import { clock, t, term } from "../lib/i18n.js";
import { api, panelLoad } from "./api.js";

let store;
let load;
const SHOWN = 50;

export function start(s) {
  store = s;
  load = panelLoad("reports-panel", async () => {
    const r = await api("GET", `/v1/reports?limit=${SHOWN}`);
    // Merged: a report that came on the stream while this was read stays.
    const ids = new Set(r.reports.map((x) => x.id));
    const newest = r.reports.length ? r.reports[0].at : "";
    const fresh = store.state.reports.filter((x) => !ids.has(x.id) && x.at > newest);
    store.set({ reports: [...fresh, ...r.reports].slice(0, SHOWN) }); // newest first
  });
  store.subscribe(["reports", "lang"], render);
  // First read on the stream's hello (see main.js), so nothing falls between the two.
}

export function refresh() {
  if (load) load();
}

export function onReport(r) {
  if (store.state.reports.some((x) => x.id === r.id)) return;
  store.set({ reports: [r, ...store.state.reports].slice(0, SHOWN) });
}

function render(s) {
  fill(
    "reports",
    s.reports.length
      ? s.reports.map((r) =>
          el(
            "div",
            { class: "card report", dataset: { id: r.id } },
            el("div", { class: "badges" }, el("span", { class: "badge" }, term("category", r.category)), el("span", { class: "muted" }, `${r.id} · ${clock(r.at)}`)),
            el("strong", { class: "title" }, r.title),
            el("p", { class: "body" }, r.detail),
            el("p", { class: "muted" }, t("report.from", { lead: r.lead, grid: r.grid }) + (r.incident ? ` · ${r.incident}` : ""))
          )
        )
      : el("p", { class: "muted" }, t("none"))
  );
}
