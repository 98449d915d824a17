// What both pages show of an incident the same way: its badges and its progress bar.

import { el } from "./dom.js";
import { num, t, term } from "./i18n.js";

/** Level, category, DRILL (演练) when it is one, and closed. */
export function badges(incident) {
  return [
    el("span", { class: `badge level-${incident.level}` }, term("level", incident.level)),
    el("span", { class: "badge" }, term("category", incident.category)),
    incident.drill ? el("span", { class: "badge drill", title: t("drill.hint") }, t("drill.badge")) : null,
    incident.state === "closed" ? el("span", { class: "badge closed" }, t("state.closed")) : null,
  ];
}

/** A stacked bar: accepted, declined, delivered, pending (with a legend unless compact). */
export function bar(c, total, compact) {
  const n = total || c.pending + c.delivered + c.accepted + c.declined || 1;
  const seg = (k) =>
    el("span", { class: `seg ${k}`, style: { width: `${(100 * c[k]) / n}%` }, title: `${term("status", k)} ${c[k]}` });
  return el(
    "div",
    { class: "progress" },
    el("div", { class: "bar" }, seg("accepted"), seg("declined"), seg("delivered"), seg("pending")),
    compact
      ? null
      : el(
          "div",
          { class: "legend" },
          ["accepted", "declined", "delivered", "pending"].map((k) =>
            el("span", { class: `n ${k}`, dataset: { k } }, t(`count.${k}`, { n: num(c[k]) }))
          ),
          el("span", { class: "n" }, t("count.of", { n: num(n) }))
        )
  );
}

/** The shapes of `targets.area`: one shape is written as an object, several as a list. */
export function areaShapes(area) {
  return Array.isArray(area) ? area : area ? [area] : [];
}
