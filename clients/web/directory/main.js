// The published grid directory (Art. 14), for residents: no token, nothing but what
// the hub publishes — each grid's name, kind and supervision phone, and the name, role
// and work contact of its grid lead, full-time workers and instructor.

import { byId, el, fill } from "../lib/dom.js";
import { initI18n, onLanguage, setLanguage, t, term } from "../lib/i18n.js";

let shown = null;

async function show(prefix) {
  const msg = byId("directory-msg");
  msg.className = "form-msg muted";
  msg.textContent = t("form.sending");
  try {
    const res = await fetch(`/v1/directory?prefix=${encodeURIComponent(prefix)}`);
    const data = await res.json();
    if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
    shown = data;
    msg.textContent = t("directory.count", { n: data.grids.length });
    msg.className = "form-msg ok";
    render();
  } catch (e) {
    msg.className = "form-msg error";
    msg.textContent = t("form.refused", { why: e.message });
  }
}

function render() {
  if (!shown) return;
  fill(
    "directory",
    el(
      "table",
      { class: "directory" },
      el("thead", {}, el("tr", {}, ["th.grid", "directory.name", "directory.kind", "directory.supervision", "directory.people"].map((h) => el("th", {}, t(h))))),
      el(
        "tbody",
        {},
        shown.grids.map((g) =>
          el(
            "tr",
            { dataset: { grid: g.code } },
            el("td", { class: "code" }, g.code),
            el("td", {}, g.name || ""),
            el("td", {}, g.kind ? term("kind", g.kind) : ""),
            el("td", { class: "supervision" }, g.supervision_phone || ""),
            el(
              "td",
              { class: "people" },
              g.people.map((p) => el("div", { class: "person", dataset: { role: p.role } }, `${t(`roles.${p.role}`)}：${p.name || ""}${p.work_contact ? ` · ${p.work_contact}` : ""}`))
            )
          )
        )
      )
    )
  );
}

byId("directory-form").addEventListener("submit", (e) => {
  e.preventDefault();
  show(byId("d-prefix").value.trim());
});
byId("lang").addEventListener("change", (e) => setLanguage(e.target.value));
onLanguage(render);
initI18n();
const start = new URLSearchParams(location.search).get("prefix");
if (start) {
  byId("d-prefix").value = start;
  show(start);
}
