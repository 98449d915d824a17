// The activation form. A real (not drill) activation asks for a confirmation; the
// outcome, or the hub's refusal in words, is shown in the form's own line.

import { byId, formValues } from "../lib/dom.js";
import { onLanguage, t } from "../lib/i18n.js";
import { api, apiText } from "./api.js";
import * as tree from "./tree.js";

let store;

export function start(s) {
  store = s;
}

function drillLook() {
  const drill = byId("f-drill").checked;
  byId("issue").classList.toggle("is-drill", drill);
  byId("f-submit").textContent = t(drill ? "issue.submit_drill" : "issue.submit");
}

byId("f-drill").addEventListener("change", drillLook);
onLanguage(drillLook);

/**
 * The area field as `targets.area`: CAP's text form ("lat,lon lat,lon …" for a polygon,
 * "lat,lon radius_m" for a circle, shapes on separate lines), or JSON (an area object,
 * a list of them, or a bare [[lat, lon], …] polygon). Latitude first, as CAP writes it.
 */
export function parseArea(text, datum) {
  const src = text.trim();
  if (!src) return [];
  const withDatum = (a) => (datum && datum !== "wgs84" ? { ...a, datum } : a);
  if (src.startsWith("{") || src.startsWith("[")) {
    const j = JSON.parse(src);
    if (Array.isArray(j) && Array.isArray(j[0]) && typeof j[0][0] === "number") return [withDatum({ polygon: j })];
    return (Array.isArray(j) ? j : [j]).map(withDatum);
  }
  return src
    .split(/\n+/)
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const parts = line.split(/\s+/);
      const pair = (p) => {
        const [lat, lon] = p.split(",").map(Number);
        if (!Number.isFinite(lat) || !Number.isFinite(lon)) throw new Error(`"${p}" ≠ lat,lon`);
        return [lat, lon];
      };
      if (parts.length === 2 && !parts[1].includes(",")) {
        const [lat, lon] = pair(parts[0]);
        return withDatum({ circle: { lat, lon, radius_m: Number(parts[1]) } });
      }
      return withDatum({ polygon: parts.map(pair) });
    });
}

function show(kind, text) {
  const out = byId("issue-result");
  out.className = `wide form-msg ${kind}`;
  out.textContent = text;
}

byId("issue-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const v = formValues(form);
  const codes = v.codes.split(/[\s,;，；、]+/).filter(Boolean);
  let area;
  try {
    area = parseArea(v.area, v.datum);
  } catch (e) {
    return show("error", t("issue.area_bad", { why: e.message }));
  }
  if (!codes.length && !area.length) return show("error", t("issue.no_target"));
  const body = {
    title: v.title,
    body: v.body,
    level: v.level,
    category: v.category,
    drill: v.drill,
    targets: { codes, ...(area.length ? { area } : {}), ...(v.roles.length ? { roles: v.roles } : {}) },
    ...(v.window ? { ack_within_s: Number(v.window) } : {}),
  };
  if (!v.drill && !confirm(t("issue.confirm_real"))) return;
  const button = byId("f-submit");
  const out = byId("issue-result");
  button.disabled = true;
  out.className = "wide form-msg muted";
  out.textContent = t("form.sending");
  try {
    const r = await api("POST", "/v1/incidents", body);
    out.className = "wide form-msg ok";
    out.textContent =
      r.state === "pending_approval"
        ? t("issue.held", { id: r.id, recipients: r.recipients })
        : t("issue.done", { id: r.id, recipients: r.recipients, online: r.online });
    form.reset();
    drillLook();
    tree.clearTargets();
    if (r.state !== "pending_approval") store.set({ selected: r.id });
  } catch (e) {
    out.className = "wide form-msg error";
    out.textContent = t("issue.refused", { why: e.message });
  } finally {
    button.disabled = false;
  }
});

// A CAP file from a warning system: the hub reads it (Alert, Update or Cancel) and says
// what it did; a real alert asks for the same confirmation as the form.
byId("f-cap-import").addEventListener("click", async () => {
  const file = byId("f-cap").files[0];
  if (!file) return show("error", t("issue.cap_none"));
  let xml;
  try {
    xml = await file.text();
  } catch (e) {
    return show("error", t("issue.refused", { why: e.message }));
  }
  // The alert's own status (the root's child, not a word anywhere in the file).
  const root = new DOMParser().parseFromString(xml, "application/xml").documentElement;
  const status = [...(root ? root.children : [])].find((c) => c.localName === "status");
  const real = !(status && status.textContent.trim() === "Exercise");
  if (real && !confirm(t("issue.confirm_real"))) return;
  const button = byId("f-cap-import");
  button.disabled = true;
  show("muted", t("form.sending"));
  try {
    const r = await apiText("POST", "/v1/cap", xml, "application/cap+xml");
    show("ok", t("issue.cap_done", { action: r.action, id: r.id, rev: r.rev }));
    byId("f-cap").value = "";
    store.set({ selected: r.id });
  } catch (e) {
    show("error", t("issue.refused", { why: e.message }));
  } finally {
    button.disabled = false;
  }
});
