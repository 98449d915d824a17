// The selected incident on a sketch, drawn here (no map tiles, nothing from the
// internet): the outlines of the grids it reaches, its target shapes, and each lead's
// latest check-in, inside (green) or outside (red) the area; and the check-ins as a
// table. Coordinates are WGS 84 degrees; the sketch is an equirectangular projection
// scaled by cos(latitude), which is true enough across a district.

import { el, fill } from "../lib/dom.js";
import { clock, num, t } from "../lib/i18n.js";
import { api } from "./api.js";
import { areaShapes } from "../lib/incident.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 360;
const PAD = 12;

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) if (c) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/** The rings (arrays of [lon, lat]) of a GeoJSON Polygon or MultiPolygon. */
function rings(geometry) {
  if (!geometry) return [];
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

/** A circle as a 64-gon of [lon, lat] (on a sphere of the Earth's mean radius). */
function circleRing(c) {
  const r = c.radius_m / 6371008.8;
  const lat = (c.lat * Math.PI) / 180;
  const lon = (c.lon * Math.PI) / 180;
  const out = [];
  for (let k = 0; k <= 64; k++) {
    const b = (2 * Math.PI * k) / 64;
    const la = Math.asin(Math.sin(lat) * Math.cos(r) + Math.cos(lat) * Math.sin(r) * Math.cos(b));
    const lo = lon + Math.atan2(Math.sin(b) * Math.sin(r) * Math.cos(lat), Math.cos(r) - Math.sin(lat) * Math.sin(la));
    out.push([(lo * 180) / Math.PI, (la * 180) / Math.PI]);
  }
  return out;
}

/** The area's shapes as rings of [lon, lat] (the API writes them lat first). */
function areaRings(area) {
  return areaShapes(area).map((a) => (a.polygon ? a.polygon.map(([lat, lon]) => [lon, lat]) : a.circle ? circleRing(a.circle) : [])).filter((r) => r.length);
}

function sketch(m) {
  const grids = m.grids.map((g) => ({ code: g.code, name: g.name, rings: rings(g.geometry) }));
  const shapes = areaRings(m.area);
  const points = m.checkins.map((c) => [c.lon, c.lat]);
  const all = [...grids.flatMap((g) => g.rings.flat()), ...shapes.flat(), ...points];
  if (!grids.length && !shapes.length) return el("p", { class: "muted" }, t("detail.map_none"));
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of all) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  const k = Math.cos((((y0 + y1) / 2) * Math.PI) / 180);
  const scale = Math.min((WIDTH - 2 * PAD) / Math.max((x1 - x0) * k, 1e-9), (HEIGHT - 2 * PAD) / Math.max(y1 - y0, 1e-9));
  const px = ([x, y]) => [PAD + (x - x0) * k * scale, HEIGHT - PAD - (y - y0) * scale];
  const path = (rs) => rs.map((r) => "M" + r.map((p) => px(p).map((v) => v.toFixed(1)).join(",")).join("L") + "Z").join(" ");
  return svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "sketch", role: "img", "aria-label": t("detail.map") },
    grids.map((g) => svg("path", { class: "grid", d: path(g.rings), "data-grid": g.code }, svg("title", {}, g.name ? `${g.code} ${g.name}` : g.code))),
    shapes.map((r) => svg("path", { class: "area", d: path([r]) })),
    m.checkins.map((c) => {
      const [x, y] = px([c.lon, c.lat]);
      const where = c.inside === true ? "inside" : c.inside === false ? "outside" : "unknown";
      return svg("circle", { class: `checkin ${where}`, cx: x.toFixed(1), cy: y.toFixed(1), r: 5, "data-lead": c.lead }, svg("title", {}, `${c.lead} · ${t(`checkin.${where}`)}`));
    })
  );
}

function checkins(m) {
  if (!m.checkins.length) return el("p", { class: "muted" }, t("detail.no_checkin"));
  const inside = m.checkins.filter((c) => c.inside === true).length;
  const outside = m.checkins.filter((c) => c.inside === false).length;
  return [
    el("p", { class: "checkin-summary" }, t("checkin.summary", { n: num(m.checkins.length), inside: num(inside), outside: num(outside) })),
    el(
      "table",
      { class: "checkins" },
      el("thead", {}, el("tr", {}, ["th.lead", "th.grid", "th.time", "th.where", "th.note"].map((h) => el("th", {}, t(h))))),
      el(
        "tbody",
        {},
        m.checkins.map((c) => {
          const where = c.inside === true ? "inside" : c.inside === false ? "outside" : "unknown";
          return el(
            "tr",
            { dataset: { lead: c.lead, where } },
            el("td", {}, c.lead),
            el("td", { class: "code" }, c.grid),
            el("td", {}, clock(c.at)),
            el("td", { class: `where where-${where}` }, `${t(`checkin.${where}`)} (${c.lat.toFixed(5)}, ${c.lon.toFixed(5)})`),
            el("td", {}, c.note || "")
          );
        })
      )
    ),
  ];
}

let shown = null; // the last answer, redrawn on a language switch
let asked = 0;

/** Reads and draws the sketch of incident `id` (`GET /v1/incidents/{id}/map`); a
 * failure is said in the sketch's place only. */
export async function load(id) {
  if (!id) return;
  const mine = ++asked;
  try {
    const m = await api("GET", `/v1/incidents/${encodeURIComponent(id)}/map`);
    if (mine !== asked) return;
    shown = m;
    render();
  } catch (e) {
    if (mine !== asked) return;
    shown = null;
    fill("d-map", el("p", { class: "error" }, t("form.refused", { why: e.message })));
  }
}

/** Draws the last answer read. */
export function render() {
  const m = shown;
  if (!m) return;
  fill("d-map", sketch(m), m.without_outline ? el("p", { class: "muted" }, t("detail.map_omitted", { n: num(m.without_outline) })) : null);
  fill("d-checkins", checkins(m));
}
