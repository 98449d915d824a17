// Requests held under the two-person rule: each with its full text, targets, recipient
// count and who asked. A supervisor or admin other than the asker may approve (the
// approval is bound to the content shown: its digest) or reject with a reason; the
// asker sees that it waits. Read again on every `approval` event.

import { byId, delegate, el, fill } from "../lib/dom.js";
import { clock, num, t } from "../lib/i18n.js";
import { badges } from "../lib/incident.js";
import { api, panelLoad } from "./api.js";

let store;
let load;
const said = new Map(); // request id -> what happened to the last decision asked

export function start(s) {
  store = s;
  load = panelLoad("approvals-panel", async () => {
    const r = await api("GET", "/v1/approvals?state=pending_approval");
    store.set({ approvals: r.approvals });
  });
  store.subscribe(["approvals", "claims", "lang"], render);
  delegate(byId("approvals"), {
    approve: (b) => decide(b, "approve", { digest: b.dataset.digest }),
    reject: (b) => {
      const reason = b.closest(".card").querySelector(".reject-reason").value.trim();
      if (!reason) return note(b.dataset.id, "error", t("approval.reason_needed"));
      decide(b, "reject", { reason });
    },
  });
}

export function refresh() {
  if (load) load();
}

/** An `approval` event: something changed; the list is read again. */
export function onApproval() {
  if (load) load();
}

function note(id, kind, text) {
  said.set(id, { kind, text });
  render(store.state);
}

async function decide(button, what, body) {
  const id = button.dataset.id;
  button.disabled = true;
  note(id, "muted", t("form.sending"));
  try {
    const a = await api("POST", `/v1/incidents/${encodeURIComponent(id)}/${what}`, body);
    note(id, "ok", a.state === "active" ? t("approval.issued", { id: a.incident }) : t("approval.rejected"));
    if (a.incident) store.set({ selected: a.incident });
    load();
  } catch (e) {
    note(id, "error", t("form.refused", { why: e.message }));
  } finally {
    button.disabled = false;
  }
}

function render(s) {
  const me = s.claims || {};
  const mayDecide = me.role === "supervisor" || me.role === "admin";
  const list = s.approvals || [];
  fill(
    "approvals",
    list.length
      ? list.map((a) => {
          const r = a.request;
          const own = a.requested_by === me.sub;
          const line = said.get(a.id);
          return el(
            "div",
            { class: "card approval", dataset: { id: a.id } },
            el("div", { class: "badges" }, badges({ ...r, state: "active" }), el("span", { class: "muted" }, `${a.id} · ${clock(a.requested_at)}`)),
            el("strong", { class: "title" }, r.title),
            el("p", { class: "body" }, r.body),
            el("p", { class: "meta" }, t("approval.meta", { who: a.requested_by, n: num(a.recipients), targets: r.targets.codes.join(", ") || "▱", until: clock(a.expires_at) })),
            mayDecide && !own
              ? el(
                  "div",
                  { class: "decide" },
                  el("button", { class: "primary approve", type: "button", "data-action": "approve", dataset: { id: a.id, digest: a.digest } }, t("approval.approve")),
                  el("input", { class: "reject-reason", placeholder: t("approval.reason") }),
                  el("button", { class: "danger reject", type: "button", "data-action": "reject", dataset: { id: a.id } }, t("approval.reject"))
                )
              : el("p", { class: "muted waiting" }, own ? t("approval.yours") : t("approval.waiting")),
            line ? el("p", { class: `form-msg ${line.kind}` }, line.text) : null
          );
        })
      : el("p", { class: "muted" }, t("none"))
  );
}


