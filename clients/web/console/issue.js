// The activation form. A real (not drill) activation asks for a confirmation; the
// outcome, or the hub's refusal in words, is shown in the form's own line.

import { byId, formValues } from "../lib/dom.js";
import { onLanguage, t } from "../lib/i18n.js";
import { api } from "./api.js";
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

byId("issue-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const v = formValues(form);
  const codes = v.codes.split(/[\s,;，；、]+/).filter(Boolean);
  const body = {
    title: v.title,
    body: v.body,
    level: v.level,
    category: v.category,
    drill: v.drill,
    targets: { codes, ...(v.roles.length ? { roles: v.roles } : {}) },
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
    out.textContent = t("issue.done", { id: r.id, recipients: r.recipients, online: r.online });
    form.reset();
    drillLook();
    tree.clearTargets();
    store.set({ selected: r.id });
  } catch (e) {
    out.className = "wide form-msg error";
    out.textContent = t("issue.refused", { why: e.message });
  } finally {
    button.disabled = false;
  }
});
